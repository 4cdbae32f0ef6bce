/*
 * unicode.c - UTF-8 coding and codepoint classes for the tokenizers.
 *
 * The decoder follows the reference tokenizer's lenient rules on purpose:
 * a lead byte's high bits give the length, continuation bytes must be
 * 10xxxxxx, overlong forms are accepted, anything else becomes U+FFFD for
 * exactly one byte. Token ids depend on these rules for malformed input.
 */
#include "unicode.h"

#include "unicode_data.inc"

/* The table's category: 0 other, 1-5 the letter categories, 6 number,
 * 7 punctuation, 8 symbol, 9 mark (engine/unicode_gen.py). */
static int table_category(uint32_t cp)
{
    size_t lo = 0, hi = sizeof unicode_category_ranges / sizeof unicode_category_ranges[0];
    while (hi - lo > 1) { /* last entry whose first codepoint <= cp */
        size_t mid = (lo + hi) / 2;
        if ((unicode_category_ranges[mid] >> 4) <= cp) lo = mid;
        else hi = mid;
    }
    return (int)(unicode_category_ranges[lo] & 15);
}

int unicode_class(uint32_t cp)
{
    static const unsigned char class_of[16] = {UNICODE_OTHER,  UNICODE_LETTER, UNICODE_LETTER, UNICODE_LETTER,
                                               UNICODE_LETTER, UNICODE_LETTER, UNICODE_NUMBER, UNICODE_PUNCT,
                                               UNICODE_SYMBOL, UNICODE_MARK};
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return UNICODE_LETTER;
        if (cp >= '0' && cp <= '9') return UNICODE_NUMBER;
    }
    return class_of[table_category(cp)];
}

int unicode_letter_category(uint32_t cp)
{
    if (cp < 0x80) return cp >= 'A' && cp <= 'Z' ? UNICODE_LU : cp >= 'a' && cp <= 'z' ? UNICODE_LL : UNICODE_NOT_LETTER;
    int cat = table_category(cp);
    return cat <= UNICODE_LO ? cat : UNICODE_NOT_LETTER;
}

int unicode_is_whitespace(uint32_t cp)
{
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

size_t utf8_seq_len(unsigned char lead)
{
    static const unsigned char by_high_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return by_high_nibble[lead >> 4];
}

static int is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

size_t utf8_decode(const char *s, size_t len, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n;
    uint32_t v;
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    if (u[0] < 0xC0) n = 0; /* stray continuation byte */
    else if (u[0] < 0xE0) n = 2, v = u[0] & 0x1F;
    else if (u[0] < 0xF0) n = 3, v = u[0] & 0x0F;
    else if (u[0] < 0xF8) n = 4, v = u[0] & 0x07;
    else n = 0;
    if (n == 0 || n > len) goto invalid;
    for (size_t i = 1; i < n; i++) {
        if (!is_continuation(u[i])) goto invalid;
        v = v << 6 | (u[i] & 0x3F);
    }
    if (v > 0x10FFFF) goto invalid;
    *cp = v;
    return n;
invalid:
    *cp = UNICODE_REPLACEMENT;
    return 1;
}

size_t utf8_valid_len(const char *s, size_t len)
{
    static const uint32_t shortest[5] = {0, 0, 0x80, 0x800, 0x10000}; /* smallest codepoint per length */
    uint32_t cp;
    size_t n = utf8_decode(s, len, &cp);
    if (n == 1 && (unsigned char)s[0] >= 0x80) return 0;
    if (cp < shortest[n] || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

int utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t utf8_complete_prefix(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    /* A sequence still open at the end starts at most 3 bytes back. */
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        unsigned char c = u[len - back];
        if (is_continuation(c)) continue;
        size_t need = c >= 0xF0 && c < 0xF8 ? 4 : c >= 0xE0 && c < 0xF0 ? 3 : c >= 0xC0 && c < 0xE0 ? 2 : 1;
        return need > back ? len - back : len;
    }
    return len;
}
