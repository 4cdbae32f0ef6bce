/*
 * pretokenize.c - byte-level BPE split rules as hand-written matchers.
 *
 * A rule is a function that says how many codepoints its regular expression
 * matches at a position (0 = no match), with leftmost-first alternation and
 * the backtracking of the original expression worked out by hand. Applying a
 * rule to a piece scans it left to right: every match becomes a word, and
 * so does each run of text between matches, which is how the reference
 * tokenizer's regex iterator splits. Pieces never see past their own end
 * (lookaheads and `$` treat the piece end as the end of the text).
 *
 * Classes follow the reference: \s is White_Space, \p{L} letters, \p{N}
 * numbers; rules written without \p categories ran on codepoints with every
 * non-ASCII whitespace replaced by U+000B there, so they see it that way here.
 * The case-aware classes of gpt-4o (\p{Lu}, \p{Ll}, ...) are the Unicode
 * categories of engine/unicode_data.inc, as the expression documents them.
 *
 * Every matcher must stay linear: a call may look at the runs that start at
 * its position, but a long run it reads is then (mostly) its match, so the
 * scan of a piece reads each codepoint a bounded number of times. The
 * tokenizer fuzz target (tests/fuzz/fuzz_tokenizer.c) runs every rule.
 *
 * To add a pre-tokenizer: write its expressions as rules here (reuse the
 * alternatives below where they are the same), add a pretokenizer_kind, its
 * rule list in rules_for(), and its tokenizer.ggml.pre names in `known`.
 */
#include "pretokenize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unicode.h"

#define CLASS_MASK 0x07
#define FLAG_WS 0x08
#define FLAG_UPPER 0x10 /* [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] */
#define FLAG_LOWER 0x20 /* [\p{Ll}\p{Lm}\p{Lo}\p{M}] */

typedef struct {
    const uint32_t *cp;
    const uint8_t *flags; /* unicode class | FLAG_WS | FLAG_UPPER | FLAG_LOWER */
} text_view;

typedef size_t (*rule_fn)(const text_view *t, size_t pos, size_t end);

static int is_ws(const text_view *t, size_t i) { return t->flags[i] & FLAG_WS; }
static int class_is(const text_view *t, size_t i, int cls) { return !is_ws(t, i) && (t->flags[i] & CLASS_MASK) == cls; }
static int is_letter(const text_view *t, size_t i) { return class_is(t, i, UNICODE_LETTER); }
static int is_number(const text_view *t, size_t i) { return class_is(t, i, UNICODE_NUMBER); }
static int is_punct(const text_view *t, size_t i) { return class_is(t, i, UNICODE_PUNCT); }
/* [^\s\p{L}\p{N}] */
static int is_other(const text_view *t, size_t i) { return !is_ws(t, i) && !is_letter(t, i) && !is_number(t, i); }
static int is_newline(const text_view *t, size_t i) { return t->cp[i] == '\r' || t->cp[i] == '\n'; }
static int is_upper_like(const text_view *t, size_t i) { return t->flags[i] & FLAG_UPPER; }
static int is_lower_like(const text_view *t, size_t i) { return t->flags[i] & FLAG_LOWER; }
/* The codepoint as the category-free rules saw it. */
static uint32_t plain_cp(const text_view *t, size_t i) { return t->cp[i] > 0x7F && is_ws(t, i) ? 0x0B : t->cp[i]; }

static size_t run_of(const text_view *t, size_t pos, size_t end, int (*pred)(const text_view *, size_t))
{
    size_t i = pos;
    while (i < end && pred(t, i)) i++;
    return i - pos;
}

static uint32_t ascii_lower(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* Simple Unicode case folding of the contraction letters: only 's' has a
 * non-ASCII case variant, U+017F LATIN SMALL LETTER LONG S. */
static uint32_t fold_contraction_letter(uint32_t c) { return c == 0x017F ? 's' : ascii_lower(c); }

/* 's|'t|'re|'ve|'m|'ll|'d, optionally case-insensitive (any_case 1: ASCII
 * only, as the reference wrote Llama 3's '[sS]'; 2: Unicode case folding,
 * as (?i:...) means in gpt-4o's expression). */
static size_t match_contraction(const text_view *t, size_t pos, size_t end, int any_case)
{
    if (t->cp[pos] != '\'' || pos + 1 >= end) return 0;
    uint32_t (*fold)(uint32_t) = any_case == 2 ? fold_contraction_letter : ascii_lower;
    uint32_t a = any_case ? fold(t->cp[pos + 1]) : t->cp[pos + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (pos + 2 >= end) return 0;
    uint32_t b = any_case ? fold(t->cp[pos + 2]) : t->cp[pos + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

/* " ?X+" for a class predicate X that never matches a space. */
static size_t match_space_opt_run(const text_view *t, size_t pos, size_t end, int (*pred)(const text_view *, size_t))
{
    if (t->cp[pos] == ' ' && pos + 1 < end && pred(t, pos + 1)) return 1 + run_of(t, pos + 1, end, pred);
    return run_of(t, pos, end, pred);
}

/* "\s?X+" for a class predicate X that never matches whitespace. */
static size_t match_ws_opt_run(const text_view *t, size_t pos, size_t end, int (*pred)(const text_view *, size_t))
{
    if (is_ws(t, pos) && pos + 1 < end && pred(t, pos + 1)) return 1 + run_of(t, pos + 1, end, pred);
    return run_of(t, pos, end, pred);
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S) */
static size_t rule_gpt2(const text_view *t, size_t pos, size_t end)
{
    size_t n;
    if ((n = match_contraction(t, pos, end, 0))) return n;
    if ((n = match_space_opt_run(t, pos, end, is_letter))) return n;
    if ((n = match_space_opt_run(t, pos, end, is_number))) return n;
    if ((n = match_space_opt_run(t, pos, end, is_other))) return n;
    n = run_of(t, pos, end, is_ws);
    if (n == 0 || pos + n == end) return n;
    return n - 1; /* give the last space to the next word; 0 when that leaves nothing */
}

/* \p{N}{1,max}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ -- the alternatives after
 * the words in Llama 3 like rules; gpt-4o also takes '/' after punctuation
 * ([\r\n/]*). */
static size_t match_llama3_tail(const text_view *t, size_t pos, size_t end, size_t max_digits, int slash)
{
    size_t n;
    if (is_number(t, pos)) {
        n = run_of(t, pos, end, is_number);
        return n < max_digits ? n : max_digits;
    }
    size_t start = t->cp[pos] == ' ' && pos + 1 < end && is_other(t, pos + 1) ? pos + 1 : pos;
    if (is_other(t, start)) {
        size_t i = start + run_of(t, start, end, is_other);
        while (i < end && (is_newline(t, i) || (slash && t->cp[i] == '/'))) i++;
        return i - pos;
    }
    size_t ws = run_of(t, pos, end, is_ws), last_newline_end = 0;
    for (size_t i = pos; i < pos + ws; i++)
        if (is_newline(t, i)) last_newline_end = i + 1;
    if (last_newline_end) return last_newline_end - pos;
    if (ws > 1 && pos + ws < end) return ws - 1;
    return ws;
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 * \s*[\r\n]+|\s+(?!\S)|\s+  -- Llama 3 with max_digits 3, Qwen2 with 1. */
static size_t match_llama3_like(const text_view *t, size_t pos, size_t end, size_t max_digits)
{
    size_t n;
    if ((n = match_contraction(t, pos, end, 1))) return n;
    if (is_letter(t, pos)) return run_of(t, pos, end, is_letter);
    if (!is_newline(t, pos) && !is_number(t, pos) && pos + 1 < end && is_letter(t, pos + 1))
        return 1 + run_of(t, pos + 1, end, is_letter);
    return match_llama3_tail(t, pos, end, max_digits, 0);
}

static size_t rule_llama3(const text_view *t, size_t pos, size_t end) { return match_llama3_like(t, pos, end, 3); }
static size_t rule_qwen2(const text_view *t, size_t pos, size_t end) { return match_llama3_like(t, pos, end, 1); }

/* [^\r\n\p{L}\p{N}] */
static int is_word_prefix(const text_view *t, size_t i) { return !is_newline(t, i) && !is_letter(t, i) && !is_number(t, i); }

/* [U]*[L]+(?i:'s|'t|'re|'ve|'m|'ll|'d)? at s, U = [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}],
 * L = [\p{Ll}\p{Lm}\p{Lo}\p{M}]; 0 when it does not match. Greedy U* gives back
 * codepoints until an L follows, so the L+ starts at the last L inside the U
 * run, or right after the run. */
static size_t match_lower_word(const text_view *t, size_t s, size_t end)
{
    size_t i = s, lower_at = end; /* end: no L yet */
    for (; i < end && is_upper_like(t, i); i++)
        if (is_lower_like(t, i)) lower_at = i;
    if (i < end && is_lower_like(t, i)) lower_at = i;
    if (lower_at == end) return 0;
    i = lower_at + run_of(t, lower_at, end, is_lower_like);
    return i + (i < end ? match_contraction(t, i, end, 2) : 0) - s;
}

/* [U]+[L]*(?i:'s|'t|'re|'ve|'m|'ll|'d)? at s. */
static size_t match_upper_word(const text_view *t, size_t s, size_t end)
{
    size_t i = s + run_of(t, s, end, is_upper_like);
    if (i == s) return 0;
    i += run_of(t, i, end, is_lower_like);
    return i + (i < end ? match_contraction(t, i, end, 2) : 0) - s;
}

/* [^\r\n\p{L}\p{N}]?[U]*[L]+(?i:'s|...)?|[^\r\n\p{L}\p{N}]?[U]+[L]*(?i:'s|...)?|\p{N}{1,3}|
 * ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+  -- gpt-4o (o200k_base). Each word
 * alternative is tried with its optional prefix codepoint and then without,
 * as a backtracking matcher would; without differs only when the prefix is a
 * mark (\p{M} is in the prefix class and in U and L). */
static size_t rule_gpt4o(const text_view *t, size_t pos, size_t end)
{
    size_t n;
    int prefix = is_word_prefix(t, pos) && pos + 1 < end;
    if (prefix && (n = match_lower_word(t, pos + 1, end))) return 1 + n;
    if ((n = match_lower_word(t, pos, end))) return n;
    if (prefix && (n = match_upper_word(t, pos + 1, end))) return 1 + n;
    if ((n = match_upper_word(t, pos, end))) return n;
    return match_llama3_tail(t, pos, end, 3, 1);
}

/* \p{N} */
static size_t rule_one_number(const text_view *t, size_t pos, size_t end) { return is_number(t, pos) ? 1 : 0; }
/* \p{N}+ */
static size_t rule_numbers(const text_view *t, size_t pos, size_t end) { return run_of(t, pos, end, is_number); }

/* [0-9][0-9][0-9] */
static size_t rule_three_digits(const text_view *t, size_t pos, size_t end)
{
    if (pos + 3 > end) return 0;
    for (size_t i = pos; i < pos + 3; i++)
        if (t->cp[i] < '0' || t->cp[i] > '9') return 0;
    return 3;
}

static int is_falcon_punct(const text_view *t, size_t i)
{
    uint32_t c = t->cp[i];
    return is_punct(t, i) || (c < 0x80 && c && strchr("$+<=>^~|`", (int)c));
}

static int is_default_punct(const text_view *t, size_t i)
{
    uint32_t c = t->cp[i];
    return is_punct(t, i) || (c < 0x80 && c && strchr("$+<=>^~|", (int)c));
}

/* [\p{P}\$\+<=>\^~\|`]+ */
static size_t rule_falcon_punct(const text_view *t, size_t pos, size_t end) { return run_of(t, pos, end, is_falcon_punct); }
/* [\p{P}\$\+<=>\^~\|]+ */
static size_t rule_default_punct(const text_view *t, size_t pos, size_t end)
{
    return run_of(t, pos, end, is_default_punct);
}

/* [\r\n] */
static size_t rule_newline(const text_view *t, size_t pos, size_t end) { return is_newline(t, pos) ? 1 : 0; }
/* \s?\p{L}+ */
static size_t rule_ws_letters(const text_view *t, size_t pos, size_t end) { return match_ws_opt_run(t, pos, end, is_letter); }
/* \s?\p{P}+ */
static size_t rule_ws_punct(const text_view *t, size_t pos, size_t end) { return match_ws_opt_run(t, pos, end, is_punct); }
/* \s+$ */
static size_t rule_trailing_ws(const text_view *t, size_t pos, size_t end)
{
    size_t n = run_of(t, pos, end, is_ws);
    return n && pos + n == end ? n : 0;
}

typedef struct {
    uint32_t first, last;
} cp_range;

static int in_ranges(uint32_t c, const cp_range *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (c >= r[i].first && c <= r[i].last) return 1;
    return 0;
}

/* [一-龥ࠀ-一가-퟿] */
static int is_cjk(const text_view *t, size_t i)
{
    static const cp_range cjk[] = {{0x4E00, 0x9FA5}, {0x0800, 0x4E00}, {0xAC00, 0xD7FF}};
    return in_ranges(plain_cp(t, i), cjk, sizeof cjk / sizeof cjk[0]);
}

/* DeepSeek LLM's explicit letter class [A-Za-zµÀ-ÖØ-ö...𞤀-𞥃]. */
static int is_deepseek_letter(const text_view *t, size_t i)
{
    static const cp_range letters[] = {
        {0x41, 0x5a},       {0x61, 0x7a},       {0xb5, 0xb5},       {0xc0, 0xd6},       {0xd8, 0xf6},
        {0xf8, 0x1ba},      {0x1bc, 0x1bf},     {0x1c4, 0x293},     {0x295, 0x2af},     {0x370, 0x373},
        {0x376, 0x377},     {0x37b, 0x37d},     {0x37f, 0x37f},     {0x386, 0x386},     {0x388, 0x38a},
        {0x38c, 0x38c},     {0x38e, 0x3a1},     {0x3a3, 0x3f5},     {0x3f7, 0x481},     {0x48a, 0x52f},
        {0x531, 0x556},     {0x10a0, 0x10c5},   {0x13a0, 0x13f5},   {0x13f8, 0x13fd},   {0x1c90, 0x1cba},
        {0x1cbd, 0x1cbf},   {0x1d00, 0x1d2b},   {0x1d6b, 0x1d77},   {0x1d79, 0x1d9a},   {0x1e00, 0x1f15},
        {0x1f18, 0x1f1d},   {0x1f20, 0x1f45},   {0x1f48, 0x1f4d},   {0x1f50, 0x1f57},   {0x1f59, 0x1f59},
        {0x1f5b, 0x1f5b},   {0x1f5d, 0x1f5d},   {0x1f5f, 0x1f7d},   {0x1f80, 0x1fb4},   {0x1fb6, 0x1fbc},
        {0x1fbe, 0x1fbe},   {0x1fc2, 0x1fc4},   {0x1fc6, 0x1fcc},   {0x1fd0, 0x1fd3},   {0x1fd6, 0x1fdb},
        {0x1fe0, 0x1fec},   {0x1ff2, 0x1ff4},   {0x1ff6, 0x1ffc},   {0x2102, 0x2102},   {0x2107, 0x2107},
        {0x210a, 0x2113},   {0x2115, 0x2115},   {0x2119, 0x211d},   {0x2124, 0x2124},   {0x2126, 0x2126},
        {0x2128, 0x2128},   {0x212a, 0x212d},   {0x212f, 0x2134},   {0x2139, 0x2139},   {0x213c, 0x213f},
        {0x2145, 0x2149},   {0x214e, 0x214e},   {0x2183, 0x2184},   {0x2c00, 0x2c7b},   {0x2c7e, 0x2ce4},
        {0x2ceb, 0x2cee},   {0x2cf2, 0x2cf3},   {0xa640, 0xa66d},   {0xa680, 0xa69b},   {0xa722, 0xa76f},
        {0xa771, 0xa787},   {0xa78b, 0xa78e},   {0xab70, 0xabbf},   {0xfb00, 0xfb06},   {0xfb13, 0xfb17},
        {0xff21, 0xff3a},   {0xff41, 0xff5a},   {0x10400, 0x1044f}, {0x104b0, 0x104d3}, {0x104d8, 0x104fb},
        {0x10c80, 0x10cb2}, {0x10cc0, 0x10cf2}, {0x118a0, 0x118df}, {0x1e900, 0x1e943},
    };
    return in_ranges(plain_cp(t, i), letters, sizeof letters / sizeof letters[0]);
}

/* DeepSeek LLM's punctuation class [!-/:-~！-／：-～‘-‟　-。]. */
static int is_deepseek_punct(const text_view *t, size_t i)
{
    static const cp_range punct[] = {{0x21, 0x2f},     {0x3a, 0x7e},     {0xff01, 0xff0f},
                                      {0xff1a, 0xff5e}, {0x2018, 0x201f}, {0x3000, 0x3002}};
    return in_ranges(plain_cp(t, i), punct, sizeof punct / sizeof punct[0]);
}

/* [一-龥ࠀ-一가-퟿]+ */
static size_t rule_cjk(const text_view *t, size_t pos, size_t end) { return run_of(t, pos, end, is_cjk); }
/* \s?[A-Za-zµÀ-Ö...]+ */
static size_t rule_deepseek_letters(const text_view *t, size_t pos, size_t end)
{
    return match_ws_opt_run(t, pos, end, is_deepseek_letter);
}
/* \s?[!-/:-~！-／：-～‘-‟　-。]+ */
static size_t rule_deepseek_punct(const text_view *t, size_t pos, size_t end)
{
    return match_ws_opt_run(t, pos, end, is_deepseek_punct);
}

#define MAX_RULES 6

typedef struct {
    rule_fn rules[MAX_RULES];
} rule_list;

static rule_list rules_for(pretokenizer_kind kind)
{
    switch (kind) {
    case PRETOK_GPT2: return (rule_list){{rule_gpt2}};
    case PRETOK_LLAMA3: return (rule_list){{rule_llama3}};
    case PRETOK_QWEN2: return (rule_list){{rule_qwen2}};
    case PRETOK_GPT4O: return (rule_list){{rule_gpt4o}};
    case PRETOK_STARCODER: return (rule_list){{rule_one_number, rule_gpt2}};
    case PRETOK_FALCON: return (rule_list){{rule_falcon_punct, rule_gpt2, rule_three_digits}};
    case PRETOK_DEEPSEEK_LLM:
        return (rule_list){{rule_newline, rule_deepseek_letters, rule_deepseek_punct, rule_trailing_ws, rule_cjk,
                            rule_numbers}};
    case PRETOK_DEEPSEEK_CODER:
        return (rule_list){{rule_newline, rule_ws_letters, rule_ws_punct, rule_cjk, rule_one_number}};
    case PRETOK_DEFAULT:
    default: return (rule_list){{rule_default_punct, rule_gpt2, rule_numbers, rule_three_digits}};
    }
}

typedef struct {
    size_t *ends;
    size_t n, cap;
} end_list;

static int end_push(end_list *l, size_t end)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        size_t *p = realloc(l->ends, cap * sizeof *p);
        if (!p) return -1;
        l->ends = p;
        l->cap = cap;
    }
    l->ends[l->n++] = end;
    return 0;
}

/* Splits every piece of `in` with one rule into `out`. */
static int apply_rule(rule_fn rule, const text_view *t, const end_list *in, end_list *out)
{
    size_t start = 0;
    out->n = 0;
    for (size_t k = 0; k < in->n; k++) {
        size_t end = in->ends[k], pos = start, gap = start;
        while (pos < end) {
            size_t m = rule(t, pos, end);
            if (m == 0) {
                pos++;
                continue;
            }
            if (gap < pos && end_push(out, pos)) return -1;
            pos += m;
            if (end_push(out, pos)) return -1;
            gap = pos;
        }
        if (gap < end && end_push(out, end)) return -1;
        start = end;
    }
    return 0;
}

static uint8_t codepoint_flags(uint32_t cp)
{
    int cls = unicode_class(cp), letter = unicode_letter_category(cp), flags = cls;
    if (unicode_is_whitespace(cp)) flags |= FLAG_WS;
    if (cls == UNICODE_MARK || letter == UNICODE_LM || letter == UNICODE_LO) flags |= FLAG_UPPER | FLAG_LOWER;
    else if (letter == UNICODE_LU || letter == UNICODE_LT) flags |= FLAG_UPPER;
    else if (letter == UNICODE_LL) flags |= FLAG_LOWER;
    return (uint8_t)flags;
}

int pretokenize(pretokenizer_kind kind, const uint32_t *cps, size_t n, size_t **ends)
{
    *ends = NULL;
    if (n == 0) return 0;
    uint8_t *flags = malloc(n);
    end_list cur = {0}, next = {0};
    if (!flags || end_push(&cur, n)) goto fail;
    for (size_t i = 0; i < n; i++)
        flags[i] = codepoint_flags(cps[i]);
    text_view t = {cps, flags};
    rule_list rules = rules_for(kind);
    for (int r = 0; r < MAX_RULES && rules.rules[r]; r++) {
        if (apply_rule(rules.rules[r], &t, &cur, &next)) goto fail;
        end_list swap = cur;
        cur = next;
        next = swap;
    }
    free(flags);
    free(next.ends);
    *ends = cur.ends;
    return (int)cur.n;
fail:
    free(flags);
    free(cur.ends);
    free(next.ends);
    return -1;
}

/* tokenizer.ggml.pre names whose expressions the rules above implement, as
 * the reference's vocabulary loader maps them. A name not here is refused:
 * splitting its text by other rules would change the tokens without a word. */
static const struct {
    const char *name;
    pretokenizer_kind kind;
    unsigned char ignore_merges, add_bos;
} known[] = {
    {"default", PRETOK_DEFAULT, 0, 0},
    /* exactly GPT-2's expression */
    {"gpt-2", PRETOK_GPT2, 0, 0},
    {"phi-2", PRETOK_GPT2, 0, 0},
    {"mpt", PRETOK_GPT2, 0, 0},
    {"olmo", PRETOK_GPT2, 0, 0},
    {"jais", PRETOK_GPT2, 0, 0},
    {"exaone4", PRETOK_GPT2, 0, 0},
    {"gigachat", PRETOK_GPT2, 0, 0},
    {"a.x-4.0", PRETOK_GPT2, 0, 0},
    {"mellum", PRETOK_GPT2, 0, 0},
    {"trillion", PRETOK_GPT2, 0, 0},
    {"granite-docling", PRETOK_GPT2, 0, 0},
    {"llama3", PRETOK_LLAMA3, 1, 1},
    {"llama-v3", PRETOK_LLAMA3, 1, 1},
    {"llama-bpe", PRETOK_LLAMA3, 1, 1},
    {"falcon3", PRETOK_LLAMA3, 1, 1},
    {"falcon-h1", PRETOK_LLAMA3, 1, 1},
    {"dbrx", PRETOK_LLAMA3, 0, 0},
    {"smaug-bpe", PRETOK_LLAMA3, 0, 0},
    {"chatglm-bpe", PRETOK_LLAMA3, 0, 0},
    {"glm4", PRETOK_LLAMA3, 0, 0},
    {"qwen2", PRETOK_QWEN2, 0, 0},
    {"qwen2.5", PRETOK_QWEN2, 0, 0},
    {"qwen-2.5", PRETOK_QWEN2, 0, 0},
    {"deepseek-r1-qwen", PRETOK_QWEN2, 0, 0},
    {"stablelm2", PRETOK_QWEN2, 0, 0},
    {"megrez", PRETOK_QWEN2, 0, 0},
    {"hunyuan", PRETOK_QWEN2, 0, 0},
    {"starcoder", PRETOK_STARCODER, 0, 0},
    {"refact", PRETOK_STARCODER, 0, 0},
    {"smollm", PRETOK_STARCODER, 0, 0},
    {"command-r", PRETOK_STARCODER, 0, 0},
    {"codeshell", PRETOK_STARCODER, 0, 0},
    {"exaone", PRETOK_STARCODER, 0, 0},
    {"minerva-7b", PRETOK_STARCODER, 0, 0},
    {"falcon", PRETOK_FALCON, 0, 0},
    {"deepseek-llm", PRETOK_DEEPSEEK_LLM, 0, 0},
    {"deepseek-coder", PRETOK_DEEPSEEK_CODER, 0, 0},
    {"gpt-4o", PRETOK_GPT4O, 0, 0},
    {"llama4", PRETOK_GPT4O, 0, 0},
    {"kanana2", PRETOK_GPT4O, 0, 0},
    {"minimax-m2", PRETOK_GPT4O, 0, 0},
};

int pretokenizer_from_name(const char *name, size_t len, pretokenizer_kind *kind, int *ignore_merges, int *add_bos)
{
    *kind = PRETOK_DEFAULT;
    *ignore_merges = 0;
    *add_bos = 0;
    if (!name || len == 0) return 0;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i].name) == len && memcmp(known[i].name, name, len) == 0) {
            *kind = known[i].kind;
            *ignore_merges = known[i].ignore_merges;
            *add_bos = known[i].add_bos;
            return 0;
        }
    return -1;
}

void pretokenizer_names(char *buf, size_t len)
{
    size_t used = 0;
    if (len == 0) return;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof known / sizeof known[0] && used < len; i++) {
        int n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", known[i].name);
        if (n < 0) break;
        used += (size_t)n;
    }
}
