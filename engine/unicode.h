/*
 * unicode.h - the little Unicode the tokenizers need: UTF-8 decoding that
 * never fails, the general category of a codepoint (its major class, and a
 * letter's case), and White_Space.
 *
 * Categories come from a generated range table (engine/unicode_data.inc,
 * made by engine/unicode_gen.py from Python's unicodedata), looked up by
 * binary search with an ASCII fast path.
 */
#ifndef PRBOT_UNICODE_H
#define PRBOT_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* General-category classes (the first letter of the Unicode category). */
enum {
    UNICODE_OTHER = 0,  /* C*, Z*, unassigned */
    UNICODE_LETTER = 1, /* L* */
    UNICODE_NUMBER = 2, /* N* */
    UNICODE_PUNCT = 3,  /* P* */
    UNICODE_SYMBOL = 4, /* S* */
    UNICODE_MARK = 5,   /* M* */
};

#define UNICODE_REPLACEMENT 0xFFFDu

int unicode_class(uint32_t cp);

/* Letter categories, for rules that tell case apart. */
enum {
    UNICODE_NOT_LETTER = 0,
    UNICODE_LU = 1, /* uppercase */
    UNICODE_LL = 2, /* lowercase */
    UNICODE_LT = 3, /* titlecase (U+01C5 Dz) */
    UNICODE_LM = 4, /* modifier */
    UNICODE_LO = 5, /* other: CJK, kana, Hebrew, Arabic, ... */
};

/* The letter category of cp (UNICODE_NOT_LETTER for non-letters). */
int unicode_letter_category(uint32_t cp);
/* The White_Space property (\t..\r, space, U+0085, U+00A0, U+1680, ...). */
int unicode_is_whitespace(uint32_t cp);

/* Bytes in the sequence a lead byte announces, by its high nibble (1 for
 * continuation bytes), as SentencePiece-style splitting uses it. */
size_t utf8_seq_len(unsigned char lead);
/* Decodes one codepoint at s[0..len) (len >= 1) into *cp and returns the
 * bytes consumed. A malformed or truncated sequence yields U+FFFD and
 * consumes one byte. */
size_t utf8_decode(const char *s, size_t len, uint32_t *cp);
/* Length of the valid UTF-8 sequence at s[0..len) (len >= 1), or 0 when it
 * is not one: malformed, truncated, overlong, a surrogate or above
 * U+10FFFF. utf8_decode is lenient like the reference tokenizers (input
 * text is split the way they split it); this is for text we hand out. */
size_t utf8_valid_len(const char *s, size_t len);
/* Encodes cp (<= 0x10FFFF) into out[0..4); returns the byte count. */
int utf8_encode(uint32_t cp, char *out);
/* Length of the longest prefix of s[0..len) that does not end inside an
 * incomplete (but so far valid) multi-byte sequence. */
size_t utf8_complete_prefix(const char *s, size_t len);

#endif
