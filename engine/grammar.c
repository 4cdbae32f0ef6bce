/*
 * grammar.c - GBNF-like grammars compiled to a byte-level pushdown automaton,
 * run as a lazily built DFA over the vocabulary's trie (see grammar.h).
 *
 * Four parts:
 *  1. Parser: text -> AST (literals, codepoint classes, rule references,
 *     sequences, alternations, repetitions). Literal and class characters
 *     are decoded strictly, so the grammar can only ask for valid UTF-8.
 *  2. Compiler: AST -> program. Instructions are BYTE lo..hi (consume one
 *     byte in the range, fall through), SPLIT a b, JMP a, CALL rule ret,
 *     RET and FAIL. A codepoint class becomes an alternation of UTF-8 byte
 *     range sequences (the standard split at encoding-length and
 *     continuation-byte boundaries); x{m,n} is x m times then n-m nested
 *     optional copies, so counting needs no counters at run time.
 *  3. Analysis: which program points can still reach the end of their rule
 *     (others become FAIL, so no thread ever waits in a dead corner), which
 *     rules can finish without consuming (to find left recursion, an error),
 *     and which calls are tail calls (they do not push a return address, so
 *     `list ::= item ("," list)?` runs in constant stack).
 *  4. Matcher: a thread is (pc, stack); stacks are interned linked lists of
 *     return addresses, so equal stacks are equal ids. A state is the sorted
 *     set of threads waiting on a BYTE plus an accept flag, interned too; its
 *     transition on each byte class (bytes no BYTE range tells apart) is
 *     computed on first use by following SPLIT/JMP/CALL/RET from the threads
 *     that take the byte, and then cached. Masking walks the vocabulary
 *     trie (preorder array, each node knowing where its subtree ends) with
 *     one cached transition per node, skipping dead subtrees whole.
 *
 * The cache only grows with states actually visited; past a soft size it is
 * flushed between steps (the current state is re-interned), and a step that
 * alone outgrows the hard size is an error rather than a memory blow-up.
 */
#include "grammar.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "unicode.h"

#define MAX_NESTING 64                /* parentheses inside one another */
#define MAX_HEIGHT 256                /* AST height (postfixes count too) */
#define MAX_RULES 65536
#define MAX_COUNT 1000000             /* largest m or n in x{m,n} */
#define MAX_CODE (1 << 20)            /* instructions after unrolling */
#define MAX_THREADS 4096              /* threads in one state */
#define MAX_CLOSURE_WORK (1 << 16)    /* (pc, stack) pairs visited for one transition */
#define CACHE_SOFT_BYTES (64u << 20)  /* flush between steps past this */
#define CACHE_HARD_BYTES (512u << 20) /* one step may not need more */
#define MAX_CP 0x10FFFFu
#define MAX_PIECE 65535               /* longest token in bytes */

/* err_set, then -1, for `return fail(err, errlen, ...)`. */
#define fail(err, errlen, ...) (err_set((err), (errlen), __VA_ARGS__), -1)

/* Grows *p (elements of `size` bytes, capacity *cap) to hold `need`; 0 or -1. */
static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need) n *= 2;
    void *q = realloc(*p, n * size);
    if (!q) return -1;
    *p = q;
    *cap = n;
    return 0;
}

#define FNV_OFFSET 1469598103934665603ull
#define FNV_PRIME 1099511628211ull

static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
    const unsigned char *s = data;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * FNV_PRIME;
    return h;
}

/* ====================================================================== */
/* 1. Parser                                                               */
/* ====================================================================== */

enum { N_EMPTY, N_LITERAL, N_CLASS, N_RULE, N_SEQ, N_ALT, N_REPEAT };

typedef struct {
    uint8_t kind;
    uint16_t height;
    /* LITERAL: bytes[a..a+b); CLASS: ranges[a..a+b) (codepoint pairs);
     * RULE: rule a; SEQ/ALT: kids[a..a+b); REPEAT: child a, min b, max c (-1 = none) */
    int32_t a, b, c;
} ast_node;

typedef struct {
    const char *name;
    int len;
    int body;        /* AST node, -1 while only referenced */
    size_t used_at;  /* first reference, for "undefined rule" */
} rule_def;

typedef struct {
    const char *s;
    size_t len, pos;
    char *err;
    size_t errlen;
    int failed;
    ast_node *nodes;
    size_t n_nodes, cap_nodes;
    int32_t *kids;
    size_t n_kids, cap_kids;
    char *bytes;
    size_t n_bytes, cap_bytes;
    uint32_t *ranges; /* pairs */
    size_t n_ranges, cap_ranges;
    rule_def *rules;
    size_t n_rules, cap_rules;
    int32_t *rule_slots; /* hash of rule names -> index */
    size_t rule_mask;
    int32_t *scratch; /* children being collected, a stack shared by nesting levels */
    size_t n_scratch, cap_scratch;
} parser;

static void where(const parser *p, size_t pos, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < pos && i < p->len; i++) {
        if (p->s[i] == '\n') ++*line, *col = 1;
        else ++*col;
    }
}

static int perr(parser *p, size_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(parser *p, size_t pos, const char *fmt, ...)
{
    if (p->failed) return -1;
    p->failed = 1;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line, col;
    where(p, pos, &line, &col);
    return fail(p->err, p->errlen, "grammar line %d column %d: %s", line, col, msg);
}

static int oom(parser *p) { return perr(p, p->pos, "out of memory"); }

/* A byte for a message: 'c' when printable, else 0xNN (no raw control bytes in an error line). */
static const char *show_byte(int c, char buf[8])
{
    if (c > 0x20 && c < 0x7F) snprintf(buf, 8, "'%c'", c);
    else snprintf(buf, 8, "0x%02X", c & 0xFF);
    return buf;
}

static int new_node(parser *p, int kind, int32_t a, int32_t b, int32_t c, int height)
{
    if (height > MAX_HEIGHT) return perr(p, p->pos, "expression nested too deeply (more than %d levels)", MAX_HEIGHT);
    if (grow((void **)&p->nodes, &p->cap_nodes, p->n_nodes + 1, sizeof *p->nodes)) return oom(p);
    p->nodes[p->n_nodes] = (ast_node){(uint8_t)kind, (uint16_t)height, a, b, c};
    return (int)p->n_nodes++;
}

static int peek(const parser *p) { return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1; }

static void skip_space(parser *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            p->pos++;
        } else if (c == '#') {
            while (p->pos < p->len && p->s[p->pos] != '\n') p->pos++;
        } else {
            break;
        }
    }
}

static int is_name_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static size_t name_length(const parser *p, size_t pos)
{
    size_t n = 0;
    while (pos + n < p->len && is_name_char((unsigned char)p->s[pos + n])) n++;
    return n;
}

/* True when the text at pos is `name ::=` (the start of the next rule). */
static int at_rule_start(parser *p)
{
    size_t save = p->pos, n = name_length(p, p->pos);
    if (!n) return 0;
    p->pos += n;
    skip_space(p);
    int yes = p->len - p->pos >= 3 && memcmp(p->s + p->pos, "::=", 3) == 0;
    p->pos = save;
    return yes;
}

static int rule_index(parser *p, const char *name, int len, size_t pos)
{
    uint64_t h = fnv(FNV_OFFSET, name, (size_t)len);
    if (p->n_rules * 2 >= p->rule_mask) { /* rehash at half full */
        size_t cap = p->rule_mask ? (p->rule_mask + 1) * 2 : 64;
        int32_t *slots = malloc(cap * sizeof *slots);
        if (!slots) return oom(p);
        memset(slots, 0xFF, cap * sizeof *slots);
        for (size_t r = 0; r < p->n_rules; r++) {
            size_t i = fnv(FNV_OFFSET, p->rules[r].name, (size_t)p->rules[r].len) & (cap - 1);
            while (slots[i] >= 0) i = (i + 1) & (cap - 1);
            slots[i] = (int32_t)r;
        }
        free(p->rule_slots);
        p->rule_slots = slots;
        p->rule_mask = cap - 1;
    }
    size_t i = h & p->rule_mask;
    for (; p->rule_slots[i] >= 0; i = (i + 1) & p->rule_mask) {
        rule_def *r = &p->rules[p->rule_slots[i]];
        if (r->len == len && memcmp(r->name, name, (size_t)len) == 0) return p->rule_slots[i];
    }
    if (p->n_rules >= MAX_RULES) return perr(p, pos, "more than %d rules", MAX_RULES);
    if (grow((void **)&p->rules, &p->cap_rules, p->n_rules + 1, sizeof *p->rules)) return oom(p);
    p->rules[p->n_rules] = (rule_def){name, len, -1, pos};
    p->rule_slots[i] = (int32_t)p->n_rules;
    return (int)p->n_rules++;
}

/* Decodes one strictly valid UTF-8 character (no overlongs, surrogates or
 * values past U+10FFFF); returns its length, 0 if invalid. */
static size_t utf8_strict(const char *s, size_t len, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    size_t n = u[0] >= 0xC2 && u[0] <= 0xDF ? 2 : u[0] >= 0xE0 && u[0] <= 0xEF ? 3 : u[0] >= 0xF0 && u[0] <= 0xF4 ? 4 : 0;
    if (!n || n > len) return 0;
    uint32_t v = u[0] & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((u[i] & 0xC0) != 0x80) return 0;
        v = v << 6 | (u[i] & 0x3F);
    }
    static const uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min_for_len[n] || v > MAX_CP || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return n;
}

static int hex_value(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* One character of a literal or class (escape or UTF-8) into *cp. */
static int parse_char(parser *p, uint32_t *cp)
{
    size_t start = p->pos;
    if (p->pos >= p->len) return perr(p, start, "unexpected end of the grammar");
    if (p->s[p->pos] != '\\') {
        size_t n = utf8_strict(p->s + p->pos, p->len - p->pos, cp);
        if (!n) return perr(p, start, "invalid UTF-8");
        if (*cp < 0x20 && *cp != '\t') return perr(p, start, "control character 0x%02X: write it as an escape", *cp);
        p->pos += n;
        return 0;
    }
    if (++p->pos >= p->len) return perr(p, start, "unfinished escape");
    char c = p->s[p->pos++];
    int digits = 0;
    switch (c) {
    case 'n': *cp = '\n'; return 0;
    case 'r': *cp = '\r'; return 0;
    case 't': *cp = '\t'; return 0;
    case '0': *cp = 0; return 0;
    case '\\': case '"': case '\'': case '[': case ']': case '-': case '^': case '/': case '.':
        *cp = (unsigned char)c;
        return 0;
    case 'x': digits = 2; break;
    case 'u': digits = 4; break;
    case 'U': digits = 8; break;
    default: {
        char shown[8];
        return perr(p, start, "unknown escape: backslash and %s", show_byte((unsigned char)c, shown));
    }
    }
    uint32_t v = 0;
    for (int i = 0; i < digits; i++) {
        int h = p->pos < p->len ? hex_value((unsigned char)p->s[p->pos]) : -1;
        if (h < 0) return perr(p, start, "escape '\\%c' needs %d hex digits", c, digits);
        v = v << 4 | (uint32_t)h;
        p->pos++;
    }
    if (v > MAX_CP || (v >= 0xD800 && v <= 0xDFFF)) return perr(p, start, "escape names no character (U+%X)", v);
    *cp = v;
    return 0;
}

static int parse_literal(parser *p)
{
    size_t start = p->pos++; /* the opening quote */
    size_t first = p->n_bytes;
    for (;;) {
        if (p->pos >= p->len) return perr(p, start, "unterminated literal");
        if (p->s[p->pos] == '"') break;
        uint32_t cp;
        if (parse_char(p, &cp)) return -1;
        if (grow((void **)&p->bytes, &p->cap_bytes, p->n_bytes + 4, 1)) return oom(p);
        p->n_bytes += (size_t)utf8_encode(cp, p->bytes + p->n_bytes);
    }
    p->pos++;
    if (p->n_bytes == first) return new_node(p, N_EMPTY, 0, 0, 0, 1);
    return new_node(p, N_LITERAL, (int32_t)first, (int32_t)(p->n_bytes - first), 0, 1);
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Sorts and merges n codepoint ranges (pairs in r), removes the surrogates,
 * complements over all characters if negate; appends them to p->ranges and
 * returns the count, -1 on error. */
static int add_ranges(parser *p, uint32_t *r, size_t n, int negate)
{
    uint64_t *keys = malloc((n ? n : 1) * sizeof *keys);
    uint32_t *merged = malloc((2 * n + 4) * 2 * sizeof *merged);
    if (!keys || !merged) {
        free(keys);
        free(merged);
        return oom(p);
    }
    for (size_t i = 0; i < n; i++) keys[i] = (uint64_t)r[2 * i] << 32 | r[2 * i + 1];
    qsort(keys, n, sizeof *keys, compare_u64);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t lo = (uint32_t)(keys[i] >> 32), hi = (uint32_t)keys[i];
        if (m && lo <= merged[2 * m - 1] + 1) {
            if (hi > merged[2 * m - 1]) merged[2 * m - 1] = hi;
        } else {
            merged[2 * m] = lo;
            merged[2 * m + 1] = hi;
            m++;
        }
    }
    free(keys);
    if (negate) { /* complement in place through a copy */
        uint32_t *inv = malloc((m + 1) * 2 * sizeof *inv);
        if (!inv) {
            free(merged);
            return oom(p);
        }
        size_t k = 0;
        uint32_t next = 0;
        for (size_t i = 0; i < m; i++) {
            if (merged[2 * i] > next) inv[2 * k] = next, inv[2 * k + 1] = merged[2 * i] - 1, k++;
            next = merged[2 * i + 1] + 1;
        }
        if (next <= MAX_CP) inv[2 * k] = next, inv[2 * k + 1] = MAX_CP, k++;
        memcpy(merged, inv, k * 2 * sizeof *inv);
        free(inv);
        m = k;
    }
    size_t first = p->n_ranges;
    for (size_t i = 0; i < m; i++) { /* cut out D800..DFFF */
        uint32_t lo = merged[2 * i], hi = merged[2 * i + 1];
        uint32_t piece[4];
        int k = 0;
        if (lo < 0xD800) piece[k++] = lo, piece[k++] = hi < 0xD800 ? hi : 0xD7FF;
        if (hi > 0xDFFF) piece[k++] = lo > 0xDFFF ? lo : 0xE000, piece[k++] = hi;
        if (grow((void **)&p->ranges, &p->cap_ranges, 2 * (p->n_ranges + 2), sizeof *p->ranges)) {
            free(merged);
            return oom(p);
        }
        for (int j = 0; j < k; j += 2) {
            p->ranges[2 * p->n_ranges] = piece[j];
            p->ranges[2 * p->n_ranges + 1] = piece[j + 1];
            p->n_ranges++;
        }
    }
    free(merged);
    return (int)(p->n_ranges - first);
}

static int parse_class(parser *p)
{
    size_t start = p->pos++; /* '[' */
    int negate = 0;
    if (peek(p) == '^') negate = 1, p->pos++;
    uint32_t *r = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (p->pos >= p->len) {
            free(r);
            return perr(p, start, "unterminated character class");
        }
        if (p->s[p->pos] == ']') break;
        uint32_t lo, hi;
        if (parse_char(p, &lo)) goto failed;
        hi = lo;
        if (peek(p) == '-' && p->pos + 1 < p->len && p->s[p->pos + 1] != ']') {
            p->pos++;
            if (parse_char(p, &hi)) goto failed;
            if (hi < lo) {
                perr(p, start, "range U+%04X-U+%04X is backwards", lo, hi);
                goto failed;
            }
        }
        if (grow((void **)&r, &cap, 2 * (n + 1), sizeof *r)) {
            oom(p);
            goto failed;
        }
        r[2 * n] = lo;
        r[2 * n + 1] = hi;
        n++;
    }
    p->pos++;
    size_t first = p->n_ranges;
    int count = add_ranges(p, r, n, negate);
    free(r);
    if (count < 0) return -1;
    return new_node(p, N_CLASS, (int32_t)first, count, 0, 1);
failed:
    free(r);
    return -1;
}

static int parse_alt(parser *p, int depth);

static int parse_primary(parser *p, int depth)
{
    int c = peek(p);
    if (c == '"') return parse_literal(p);
    if (c == '[') return parse_class(p);
    if (c == '.') {
        p->pos++;
        uint32_t all[2] = {0, MAX_CP};
        size_t first = p->n_ranges;
        int count = add_ranges(p, all, 1, 0);
        return count < 0 ? -1 : new_node(p, N_CLASS, (int32_t)first, count, 0, 1);
    }
    if (c == '(') {
        size_t open = p->pos++;
        int body = parse_alt(p, depth + 1);
        if (body < 0) return -1;
        skip_space(p);
        if (peek(p) != ')') return perr(p, open, "'(' without its ')'");
        p->pos++;
        return body;
    }
    size_t n = name_length(p, p->pos);
    if (n) {
        int r = rule_index(p, p->s + p->pos, (int)n, p->pos);
        p->pos += n;
        return r < 0 ? -1 : new_node(p, N_RULE, r, 0, 0, 1);
    }
    if (c < 0) return perr(p, p->pos, "unexpected end of the grammar");
    char shown[8];
    return perr(p, p->pos, "unexpected %s", show_byte(c, shown));
}

static int parse_count(parser *p, int32_t *out)
{
    size_t start = p->pos;
    int64_t v = 0;
    if (peek(p) < '0' || peek(p) > '9') return perr(p, start, "expected a number in {m,n}");
    while (peek(p) >= '0' && peek(p) <= '9') {
        v = v * 10 + (p->s[p->pos++] - '0');
        if (v > MAX_COUNT) return perr(p, start, "repetition count above %d", MAX_COUNT);
    }
    *out = (int32_t)v;
    return 0;
}

/* {m}, {m,}, {m,n}, {,n}: after the '{'. */
static int parse_braces(parser *p, int32_t *min, int32_t *max)
{
    size_t start = p->pos - 1;
    skip_space(p);
    *min = 0;
    if (peek(p) != ',' && parse_count(p, min)) return -1;
    skip_space(p);
    if (peek(p) == '}') {
        *max = *min;
    } else {
        if (peek(p) != ',') return perr(p, start, "expected ',' or '}' in {m,n}");
        p->pos++;
        skip_space(p);
        *max = -1;
        if (peek(p) != '}' && parse_count(p, max)) return -1;
        skip_space(p);
        if (peek(p) != '}') return perr(p, start, "expected '}'");
        if (*max >= 0 && *max < *min) return perr(p, start, "{%d,%d}: the maximum is below the minimum", *min, *max);
    }
    p->pos++;
    return 0;
}

static int parse_item(parser *p, int depth)
{
    int node = parse_primary(p, depth);
    while (node >= 0) {
        size_t save = p->pos;
        skip_space(p);
        int c = peek(p);
        int32_t min, max;
        if (c == '*') min = 0, max = -1, p->pos++;
        else if (c == '+') min = 1, max = -1, p->pos++;
        else if (c == '?') min = 0, max = 1, p->pos++;
        else if (c == '{') {
            p->pos++;
            if (parse_braces(p, &min, &max)) return -1;
        } else {
            p->pos = save;
            break;
        }
        node = new_node(p, N_REPEAT, node, min, max, p->nodes[node].height + 1);
    }
    return node;
}

/* Children collected on p->scratch from `mark` become one SEQ/ALT node. */
static int close_list(parser *p, size_t mark, int kind)
{
    size_t n = p->n_scratch - mark;
    if (n == 1) {
        p->n_scratch = mark;
        return p->scratch[mark];
    }
    if (n == 0) return new_node(p, N_EMPTY, 0, 0, 0, 1);
    if (grow((void **)&p->kids, &p->cap_kids, p->n_kids + n, sizeof *p->kids)) return oom(p);
    int height = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t k = p->scratch[mark + i];
        p->kids[p->n_kids + i] = k;
        if (p->nodes[k].height > height) height = p->nodes[k].height;
    }
    int node = new_node(p, kind, (int32_t)p->n_kids, (int32_t)n, 0, height + 1);
    p->n_kids += n;
    p->n_scratch = mark;
    return node;
}

static int push_scratch(parser *p, int node)
{
    if (grow((void **)&p->scratch, &p->cap_scratch, p->n_scratch + 1, sizeof *p->scratch)) return oom(p);
    p->scratch[p->n_scratch++] = node;
    return 0;
}

static int parse_seq(parser *p, int depth)
{
    size_t mark = p->n_scratch;
    for (;;) {
        skip_space(p);
        int c = peek(p);
        if (c < 0 || c == '|' || c == ')' || at_rule_start(p)) break;
        int item = parse_item(p, depth);
        if (item < 0 || push_scratch(p, item)) return -1;
    }
    return close_list(p, mark, N_SEQ);
}

static int parse_alt(parser *p, int depth)
{
    if (depth > MAX_NESTING) return perr(p, p->pos, "parentheses nested more than %d deep", MAX_NESTING);
    size_t mark = p->n_scratch;
    for (;;) {
        int seq = parse_seq(p, depth);
        if (seq < 0 || push_scratch(p, seq)) return -1;
        skip_space(p);
        if (peek(p) != '|') break;
        p->pos++;
    }
    return close_list(p, mark, N_ALT);
}

static int parse_rules(parser *p)
{
    for (;;) {
        skip_space(p);
        if (p->pos >= p->len) break;
        size_t start = p->pos, n = name_length(p, p->pos);
        if (!n) return perr(p, start, "expected a rule name");
        p->pos += n;
        skip_space(p);
        if (p->len - p->pos < 3 || memcmp(p->s + p->pos, "::=", 3) != 0)
            return perr(p, start, "expected '::=' after the rule name");
        p->pos += 3;
        int r = rule_index(p, p->s + start, (int)n, start);
        if (r < 0) return -1;
        if (p->rules[r].body >= 0) return perr(p, start, "rule '%.*s' is defined twice", (int)n, p->s + start);
        int body = parse_alt(p, 0);
        if (body < 0) return -1;
        p->rules[r].body = body;
        skip_space(p);
        char shown[8];
        if (p->pos < p->len && !at_rule_start(p))
            return perr(p, p->pos, "unexpected %s", show_byte((unsigned char)p->s[p->pos], shown));
    }
    for (size_t r = 0; r < p->n_rules; r++)
        if (p->rules[r].body < 0)
            return perr(p, p->rules[r].used_at, "undefined rule '%.*s'", p->rules[r].len, p->rules[r].name);
    return 0;
}

static void parser_free(parser *p)
{
    free(p->nodes);
    free(p->kids);
    free(p->bytes);
    free(p->ranges);
    free(p->rules);
    free(p->rule_slots);
    free(p->scratch);
}

/* ====================================================================== */
/* 2. Compiler                                                             */
/* ====================================================================== */

enum { OP_BYTE, OP_SPLIT, OP_JMP, OP_CALL, OP_RET, OP_FAIL };

typedef struct {
    uint8_t op, lo, hi; /* BYTE: consume one byte in lo..hi, then go on at pc + 1 */
    int32_t a, b;       /* SPLIT a b; JMP a; CALL rule=a ret=b (-1: tail call) */
} insn;

struct grammar {
    insn *code;
    int n_code;
    int32_t *rule_start;
    char **rule_name;
    int n_rules, root;
    uint8_t byte_class[256]; /* bytes no BYTE range tells apart share a class */
    uint8_t class_rep[256];  /* a byte of each class */
    int n_classes;
};

typedef struct {
    const parser *p;
    grammar *g;
    size_t cap;
    int failed;
    char *err;
    size_t errlen;
} compiler;

static int emit_insn(compiler *c, int op, int lo, int hi, int32_t a, int32_t b)
{
    if (c->failed) return -1;
    if (c->g->n_code >= MAX_CODE) {
        c->failed = 1;
        return fail(c->err, c->errlen, "grammar too large: more than %d instructions after expanding repetitions",
                    MAX_CODE);
    }
    if (grow((void **)&c->g->code, &c->cap, (size_t)c->g->n_code + 1, sizeof *c->g->code)) {
        c->failed = 1;
        return fail(c->err, c->errlen, "out of memory compiling the grammar");
    }
    c->g->code[c->g->n_code] = (insn){(uint8_t)op, (uint8_t)lo, (uint8_t)hi, a, b};
    return c->g->n_code++;
}

/* One UTF-8 byte-range sequence: byte j lies in lo[j]..hi[j]. */
typedef struct {
    uint8_t lo[4], hi[4];
    int n;
} u8seq;

typedef struct {
    u8seq *seq;
    size_t n, cap;
    int failed;
} seq_list;

/* Splits lo..hi (no surrogates) into sequences whose every byte position is
 * a plain range: first at the encoding-length boundaries, then wherever the
 * continuation bytes do not span their full 80..BF. */
static void utf8_split(seq_list *l, uint32_t lo, uint32_t hi)
{
    if (lo > hi || l->failed) return;
    static const uint32_t length_max[3] = {0x7F, 0x7FF, 0xFFFF};
    for (int i = 0; i < 3; i++) {
        if (lo <= length_max[i] && hi > length_max[i]) {
            utf8_split(l, lo, length_max[i]);
            utf8_split(l, length_max[i] + 1, hi);
            return;
        }
    }
    for (int i = 1; i < 4 && hi > 0x7F; i++) {
        uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) != (hi & ~m)) {
            if (lo & m) {
                utf8_split(l, lo, lo | m);
                utf8_split(l, (lo | m) + 1, hi);
                return;
            }
            if ((hi & m) != m) {
                utf8_split(l, lo, (hi & ~m) - 1);
                utf8_split(l, hi & ~m, hi);
                return;
            }
        }
    }
    if (grow((void **)&l->seq, &l->cap, l->n + 1, sizeof *l->seq)) {
        l->failed = 1;
        return;
    }
    char a[4], b[4];
    int n = utf8_encode(lo, a);
    utf8_encode(hi, b);
    u8seq *s = &l->seq[l->n++];
    s->n = n;
    for (int j = 0; j < n; j++) s->lo[j] = (uint8_t)a[j], s->hi[j] = (uint8_t)b[j];
}

/* JMP/SPLIT exits waiting for their target are chained through their b (or
 * a) field; patch_chain points them all at `to`. */
static void patch_chain(compiler *c, int32_t head, int32_t to, int use_b)
{
    while (head >= 0) {
        insn *in = &c->g->code[head];
        int32_t next = use_b ? in->b : in->a;
        if (use_b) in->b = to;
        else in->a = to;
        head = next;
    }
}

static void emit(compiler *c, int node);

/* Alternatives: SPLIT to each one but the last, each ending in a JMP to the end. */
static void emit_alternatives(compiler *c, int n, void (*emit_one)(compiler *, int, const void *), const void *ctx)
{
    int32_t exits = -1;
    for (int i = 0; i < n && !c->failed; i++) {
        int split = -1;
        if (i < n - 1) split = emit_insn(c, OP_SPLIT, 0, 0, c->g->n_code + 1, -1);
        emit_one(c, i, ctx);
        if (i < n - 1) {
            int j = emit_insn(c, OP_JMP, 0, 0, exits, 0);
            if (j < 0 || split < 0) return;
            exits = j;
            c->g->code[split].b = c->g->n_code;
        }
    }
    if (!c->failed) patch_chain(c, exits, c->g->n_code, 0);
}

static void emit_seq_one(compiler *c, int i, const void *ctx)
{
    const u8seq *s = (const u8seq *)ctx + i;
    for (int j = 0; j < s->n; j++) emit_insn(c, OP_BYTE, s->lo[j], s->hi[j], 0, 0);
}

static void emit_kid(compiler *c, int i, const void *ctx)
{
    const ast_node *n = ctx;
    emit(c, c->p->kids[n->a + i]);
}

static void emit_class(compiler *c, const ast_node *n)
{
    if (n->b == 0) {
        emit_insn(c, OP_FAIL, 0, 0, 0, 0);
        return;
    }
    seq_list l = {0};
    for (int i = 0; i < n->b; i++) utf8_split(&l, c->p->ranges[2 * (n->a + i)], c->p->ranges[2 * (n->a + i) + 1]);
    if (l.failed) {
        c->failed = 1;
        err_set(c->err, c->errlen, "out of memory compiling the grammar");
    } else {
        emit_alternatives(c, (int)l.n, emit_seq_one, l.seq);
    }
    free(l.seq);
}

static void emit_repeat(compiler *c, const ast_node *n)
{
    int32_t min = n->b, max = n->c;
    for (int32_t i = 0; i < min && !c->failed; i++) {
        int before = c->g->n_code;
        emit(c, n->a);
        if (c->g->n_code == before) break; /* matches only "": more copies add nothing */
    }
    if (max < 0) { /* loop: L: SPLIT body, end; body; JMP L */
        int loop = emit_insn(c, OP_SPLIT, 0, 0, c->g->n_code + 1, -1);
        emit(c, n->a);
        emit_insn(c, OP_JMP, 0, 0, loop, 0);
        if (!c->failed) c->g->code[loop].b = c->g->n_code;
        return;
    }
    /* (x (x (x)?)?)?: skipping one copy skips the rest */
    int32_t skips = -1;
    for (int32_t i = min; i < max && !c->failed; i++) {
        int split = emit_insn(c, OP_SPLIT, 0, 0, c->g->n_code + 1, skips);
        if (split < 0) return;
        skips = split;
        emit(c, n->a);
    }
    if (!c->failed) patch_chain(c, skips, c->g->n_code, 1);
}

static void emit(compiler *c, int node)
{
    if (c->failed) return;
    const ast_node *n = &c->p->nodes[node];
    switch (n->kind) {
    case N_EMPTY: break;
    case N_LITERAL:
        for (int32_t i = 0; i < n->b; i++) {
            unsigned char byte = (unsigned char)c->p->bytes[n->a + i];
            emit_insn(c, OP_BYTE, byte, byte, 0, 0);
        }
        break;
    case N_CLASS: emit_class(c, n); break;
    case N_RULE: emit_insn(c, OP_CALL, 0, 0, n->a, c->g->n_code + 1); break;
    case N_SEQ:
        for (int32_t i = 0; i < n->b; i++) emit(c, c->p->kids[n->a + i]);
        break;
    case N_ALT: emit_alternatives(c, n->b, emit_kid, n); break;
    case N_REPEAT: emit_repeat(c, n); break;
    }
}

/* ====================================================================== */
/* 3. Analysis                                                             */
/* ====================================================================== */

/* For each pc, the pcs whose value depends on it (reverse edges, CSR). */
typedef struct {
    int32_t *first, *list;
} dependents;

static int inputs_of(const grammar *g, int pc, int32_t in[2])
{
    const insn *i = &g->code[pc];
    switch (i->op) {
    case OP_BYTE: in[0] = pc + 1; return 1;
    case OP_SPLIT: in[0] = i->a, in[1] = i->b; return 2;
    case OP_JMP: in[0] = i->a; return 1;
    case OP_CALL:
        in[0] = g->rule_start[i->a];
        if (i->b < 0) return 1;
        in[1] = i->b;
        return 2;
    default: return 0;
    }
}

static int dependents_build(dependents *d, const grammar *g)
{
    int n = g->n_code;
    d->first = calloc((size_t)n + 2, sizeof *d->first);
    d->list = malloc(((size_t)n * 2 + 1) * sizeof *d->list);
    if (!d->first || !d->list) return -1;
    int32_t in[2];
    for (int pc = 0; pc < n; pc++)
        for (int k = inputs_of(g, pc, in); k-- > 0;) d->first[in[k] + 2]++;
    for (int pc = 0; pc <= n; pc++) d->first[pc + 1] += d->first[pc];
    for (int pc = 0; pc < n; pc++)
        for (int k = inputs_of(g, pc, in); k-- > 0;) d->list[d->first[in[k] + 1]++] = pc;
    return 0; /* first[pc]..first[pc+1] now lists pc's dependents */
}

/* One pc's value from its inputs: `consuming` is the liveness question (can
 * this point still reach its RET, bytes allowed), otherwise nullability
 * (reach its RET without consuming a byte). */
static int evaluate(const grammar *g, const uint8_t *val, int pc, int consuming)
{
    const insn *i = &g->code[pc];
    switch (i->op) {
    case OP_BYTE: return consuming && i->lo <= i->hi && val[pc + 1];
    case OP_SPLIT: return val[i->a] || val[i->b];
    case OP_JMP: return val[i->a];
    case OP_CALL: return val[g->rule_start[i->a]] && (i->b < 0 || val[i->b]);
    case OP_RET: return 1;
    default: return 0;
    }
}

/* Least fixpoint of `evaluate` by a worklist from the RETs. */
static int fixpoint(const grammar *g, const dependents *d, uint8_t *val, int consuming)
{
    int n = g->n_code, top = 0;
    int32_t *work = malloc(((size_t)n + 1) * sizeof *work);
    if (!work) return -1;
    memset(val, 0, (size_t)n + 1);
    for (int pc = 0; pc < n; pc++)
        if (g->code[pc].op == OP_RET) val[pc] = 1, work[top++] = pc;
    while (top) {
        int x = work[--top];
        for (int32_t k = d->first[x]; k < d->first[x + 1]; k++) {
            int y = d->list[k];
            if (!val[y] && evaluate(g, val, y, consuming)) val[y] = 1, work[top++] = y;
        }
    }
    free(work);
    return 0;
}

/* A call whose return address leads straight (through JMPs) to a RET returns
 * to the caller's caller: drop the push. */
static void mark_tail_calls(grammar *g)
{
    for (int pc = 0; pc < g->n_code; pc++) {
        insn *in = &g->code[pc];
        if (in->op != OP_CALL) continue;
        int32_t r = in->b;
        for (int hops = 0; hops < 64 && g->code[r].op == OP_JMP; hops++) r = g->code[r].a;
        if (g->code[r].op == OP_RET) in->b = -1;
    }
}

/* Rule r calls rule s before consuming anything: edges of the left-recursion
 * graph, found by following epsilon moves from each rule's start. */
static int left_calls(const grammar *g, const uint8_t *nullable, int32_t **first_out, int32_t **list_out)
{
    int32_t *first = calloc((size_t)g->n_rules + 1, sizeof *first);
    int32_t *seen = malloc((size_t)g->n_code * sizeof *seen);
    int32_t *stack = malloc(((size_t)g->n_code * 2 + 2) * sizeof *stack);
    int32_t *list = NULL;
    size_t n_list = 0, cap_list = 0;
    if (!first || !seen || !stack) goto oom;
    memset(seen, 0xFF, (size_t)g->n_code * sizeof *seen);
    for (int r = 0; r < g->n_rules; r++) {
        first[r] = (int32_t)n_list;
        int top = 0;
        stack[top++] = g->rule_start[r];
        while (top) {
            int pc = stack[--top];
            if (seen[pc] == r) continue;
            seen[pc] = r;
            const insn *in = &g->code[pc];
            if (in->op == OP_SPLIT) stack[top++] = in->a, stack[top++] = in->b;
            else if (in->op == OP_JMP) stack[top++] = in->a;
            else if (in->op == OP_CALL) {
                if (grow((void **)&list, &cap_list, n_list + 1, sizeof *list)) goto oom;
                list[n_list++] = in->a;
                if (nullable[g->rule_start[in->a]] && in->b >= 0) stack[top++] = in->b;
            }
        }
    }
    first[g->n_rules] = (int32_t)n_list;
    free(seen);
    free(stack);
    *first_out = first;
    *list_out = list;
    return 0;
oom:
    free(first);
    free(seen);
    free(stack);
    free(list);
    return -1;
}

/* Finds a cycle in the left-call graph; writes it to err and returns -1. */
static int check_left_recursion(const grammar *g, const uint8_t *nullable, char *err, size_t errlen)
{
    int32_t *first, *list;
    if (left_calls(g, nullable, &first, &list)) return fail(err, errlen, "out of memory checking the grammar");
    int n = g->n_rules, rc = 0;
    uint8_t *color = calloc((size_t)n, 1); /* 0 new, 1 on the path, 2 done */
    int32_t *path = malloc((size_t)n * sizeof *path), *next = malloc((size_t)n * sizeof *next);
    if (!color || !path || !next) {
        rc = fail(err, errlen, "out of memory checking the grammar");
        goto done;
    }
    for (int r0 = 0; r0 < n && !rc; r0++) {
        if (color[r0]) continue;
        int depth = 0;
        path[0] = r0, next[0] = first[r0], color[r0] = 1;
        while (depth >= 0 && !rc) {
            int r = path[depth];
            if (next[depth] == first[r + 1]) {
                color[r] = 2;
                depth--;
                continue;
            }
            int s = list[next[depth]++];
            if (color[s] == 1) { /* back edge: the cycle is path[k..depth] -> s */
                int k = depth;
                while (path[k] != s) k--;
                char chain[200] = "";
                size_t used = 0;
                for (int i = k; i <= depth && used < sizeof chain - 40; i++)
                    used += (size_t)snprintf(chain + used, sizeof chain - used, "%.30s -> ", g->rule_name[path[i]]);
                snprintf(chain + used, sizeof chain - used, "%.30s", g->rule_name[s]);
                rc = fail(err, errlen, "grammar: rule '%s' is left-recursive (%s); rewrite it to consume input first",
                          g->rule_name[s], chain);
            } else if (!color[s]) {
                depth++;
                path[depth] = s, next[depth] = first[s], color[s] = 1;
            }
        }
    }
done:
    free(color);
    free(path);
    free(next);
    free(first);
    free(list);
    return rc;
}

static void compute_byte_classes(grammar *g)
{
    uint8_t boundary[257] = {0};
    for (int pc = 0; pc < g->n_code; pc++)
        if (g->code[pc].op == OP_BYTE) boundary[g->code[pc].lo] = 1, boundary[g->code[pc].hi + 1] = 1;
    int cls = -1;
    for (int b = 0; b < 256; b++) {
        if (b == 0 || boundary[b]) g->class_rep[++cls] = (uint8_t)b;
        g->byte_class[b] = (uint8_t)cls;
    }
    g->n_classes = cls + 1;
}

static int analyse(grammar *g, char *err, size_t errlen)
{
    mark_tail_calls(g);
    dependents d = {0};
    uint8_t *live = malloc((size_t)g->n_code + 1), *nullable = malloc((size_t)g->n_code + 1);
    int rc = -1;
    if (!live || !nullable || dependents_build(&d, g) || fixpoint(g, &d, live, 1) || fixpoint(g, &d, nullable, 0)) {
        err_set(err, errlen, "out of memory checking the grammar");
        goto done;
    }
    if (!live[g->rule_start[g->root]]) {
        err_set(err, errlen, "grammar: rule 'root' can never finish, so the grammar accepts no output");
        goto done;
    }
    for (int pc = 0; pc < g->n_code; pc++)
        if (!live[pc]) g->code[pc].op = OP_FAIL;
    if (check_left_recursion(g, nullable, err, errlen)) goto done;
    compute_byte_classes(g);
    rc = 0;
done:
    free(live);
    free(nullable);
    free(d.first);
    free(d.list);
    return rc;
}

void grammar_free(grammar *g)
{
    if (!g) return;
    if (g->rule_name)
        for (int r = 0; r < g->n_rules; r++) free(g->rule_name[r]);
    free(g->rule_name);
    free(g->rule_start);
    free(g->code);
    free(g);
}

int grammar_program_size(const grammar *g) { return g->n_code; }

int grammar_parse(grammar **out, const char *text, size_t len, char *err, size_t errlen)
{
    *out = NULL;
    if (len > GRAMMAR_MAX_TEXT) return fail(err, errlen, "grammar of %zu bytes is larger than %u", len, GRAMMAR_MAX_TEXT);
    parser p = {.s = text, .len = len, .err = err, .errlen = errlen};
    grammar *g = NULL;
    if (parse_rules(&p)) goto failed;
    int root = -1;
    for (size_t r = 0; r < p.n_rules; r++)
        if (p.rules[r].len == 4 && memcmp(p.rules[r].name, "root", 4) == 0) root = (int)r;
    if (root < 0) {
        err_set(err, errlen, "grammar has no rule named 'root'");
        goto failed;
    }
    g = calloc(1, sizeof *g);
    if (!g || !(g->rule_start = malloc(p.n_rules * sizeof *g->rule_start)) ||
        !(g->rule_name = calloc(p.n_rules, sizeof *g->rule_name))) {
        err_set(err, errlen, "out of memory compiling the grammar");
        goto failed;
    }
    g->n_rules = (int)p.n_rules;
    g->root = root;
    for (size_t r = 0; r < p.n_rules; r++) {
        if (!(g->rule_name[r] = strndup(p.rules[r].name, (size_t)p.rules[r].len))) {
            err_set(err, errlen, "out of memory compiling the grammar");
            goto failed;
        }
    }
    compiler c = {.p = &p, .g = g, .err = err, .errlen = errlen};
    for (size_t r = 0; r < p.n_rules && !c.failed; r++) {
        g->rule_start[r] = g->n_code;
        emit(&c, p.rules[r].body);
        emit_insn(&c, OP_RET, 0, 0, 0, 0);
    }
    if (c.failed || analyse(g, err, errlen)) goto failed;
    parser_free(&p);
    *out = g;
    return 0;
failed:
    parser_free(&p);
    grammar_free(g);
    return -1;
}

/* ====================================================================== */
/* Vocabulary trie                                                         */
/* ====================================================================== */

/* One trie node. Most nodes end one token or none, so the walk marks `tok`
 * without a branch (n_vocab, a spare bit, when none); the rare further tokens
 * with the same bytes (an SPM byte token equal to a one-byte piece) are in
 * vocab->extra. */
typedef struct {
    int32_t end;    /* index just past this node's subtree */
    int32_t tok;    /* a token ending here, or n_vocab */
    uint16_t depth; /* bytes from the root (>= 1) */
    uint8_t byte;
    uint8_t more; /* more tokens end here: see vocab->extra */
} vnode;

typedef struct {
    int32_t node, id;
} extra_token;

struct grammar_vocab {
    int n_vocab;
    uint8_t *kind;
    char *blob;
    uint32_t *off, *len;
    vnode *nodes;
    int32_t n_nodes;
    extra_token *extra; /* by node index */
    size_t n_extra;
    int max_depth;
    int32_t *end_ids;
    int n_end;
};

typedef struct {
    const char *s;
    uint32_t len;
    int32_t id;
} piece_ref;

static int compare_piece(const void *a, const void *b)
{
    const piece_ref *x = a, *y = b;
    uint32_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

void grammar_vocab_free(grammar_vocab *v)
{
    if (!v) return;
    free(v->kind);
    free(v->blob);
    free(v->off);
    free(v->len);
    free(v->nodes);
    free(v->extra);
    free(v->end_ids);
    free(v);
}

int grammar_vocab_n_nodes(const grammar_vocab *v) { return v->n_nodes; }

/* Builds the preorder trie from the pieces sorted by bytes: each piece adds
 * nodes for its bytes past the common prefix with the one before; a node's
 * subtree ends where the next node of its depth or shallower begins. */
static int build_trie(grammar_vocab *v, piece_ref *refs, int n)
{
    size_t cap = 0, n_nodes = 0, cap_extra = 0;
    int depth_open = 0, rc = -1;
    int32_t *open = malloc((MAX_PIECE + 1) * sizeof *open); /* open[d]: the node at depth d on the current path */
    if (!open) return -1;
    for (int i = 0; i < n; i++) {
        const piece_ref *r = &refs[i];
        uint32_t lcp = 0;
        if (i > 0) {
            const piece_ref *q = &refs[i - 1];
            while (lcp < q->len && lcp < r->len && q->s[lcp] == r->s[lcp]) lcp++;
        }
        if (i > 0 && lcp == r->len) { /* same bytes as the previous piece */
            if (grow((void **)&v->extra, &cap_extra, v->n_extra + 1, sizeof *v->extra)) goto done;
            v->nodes[open[r->len]].more = 1;
            v->extra[v->n_extra++] = (extra_token){open[r->len], r->id};
            continue;
        }
        for (int d = depth_open; d > (int)lcp; d--) v->nodes[open[d]].end = (int32_t)n_nodes;
        if (grow((void **)&v->nodes, &cap, n_nodes + (r->len - lcp), sizeof *v->nodes)) goto done;
        for (uint32_t d = lcp + 1; d <= r->len; d++) {
            v->nodes[n_nodes] = (vnode){0, v->n_vocab, (uint16_t)d, (uint8_t)r->s[d - 1], 0};
            open[d] = (int32_t)n_nodes++;
        }
        depth_open = (int)r->len;
        v->nodes[open[r->len]].tok = r->id;
        if ((int)r->len > v->max_depth) v->max_depth = (int)r->len;
    }
    for (int d = depth_open; d >= 1; d--) v->nodes[open[d]].end = (int32_t)n_nodes;
    v->n_nodes = (int32_t)n_nodes;
    rc = 0;
done:
    free(open);
    return rc;
}

int grammar_vocab_new(grammar_vocab **out, int n_vocab, const char *const *pieces, const uint32_t *lens,
                      const uint8_t *kinds, char *err, size_t errlen)
{
    *out = NULL;
    if (n_vocab <= 0) return fail(err, errlen, "grammar: empty vocabulary");
    grammar_vocab *v = calloc(1, sizeof *v);
    piece_ref *refs = NULL;
    if (!v) return fail(err, errlen, "out of memory building the vocabulary trie");
    v->n_vocab = n_vocab;
    size_t total = 0;
    for (int i = 0; i < n_vocab; i++) total += lens[i];
    v->kind = malloc((size_t)n_vocab);
    v->blob = malloc(total ? total : 1);
    v->off = malloc((size_t)n_vocab * sizeof *v->off);
    v->len = malloc((size_t)n_vocab * sizeof *v->len);
    v->end_ids = malloc((size_t)n_vocab * sizeof *v->end_ids);
    refs = malloc((size_t)n_vocab * sizeof *refs);
    if (!v->kind || !v->blob || !v->off || !v->len || !v->end_ids || !refs || total > UINT32_MAX) goto oom;
    size_t pos = 0;
    int n_refs = 0;
    for (int i = 0; i < n_vocab; i++) {
        int k = kinds[i];
        if (k == GRAMMAR_TOKEN_TEXT && (lens[i] == 0 || lens[i] > MAX_PIECE)) k = GRAMMAR_TOKEN_NEVER;
        v->kind[i] = (uint8_t)k;
        v->off[i] = (uint32_t)pos;
        v->len[i] = lens[i];
        if (lens[i]) memcpy(v->blob + pos, pieces[i], lens[i]);
        pos += lens[i];
        if (k == GRAMMAR_TOKEN_END) v->end_ids[v->n_end++] = i;
    }
    for (int i = 0; i < n_vocab; i++)
        if (v->kind[i] == GRAMMAR_TOKEN_TEXT) refs[n_refs++] = (piece_ref){v->blob + v->off[i], v->len[i], i};
    qsort(refs, (size_t)n_refs, sizeof *refs, compare_piece);
    if (build_trie(v, refs, n_refs)) goto oom;
    free(refs);
    *out = v;
    return 0;
oom:
    free(refs);
    grammar_vocab_free(v);
    return fail(err, errlen, "out of memory building the vocabulary trie");
}

/* ====================================================================== */
/* 4. Matcher                                                              */
/* ====================================================================== */

typedef struct {
    int32_t pc, stk;
} thread;

/* A state's flags. CUT: on the way to it some path was dropped at
 * GRAMMAR_MAX_DEPTH. It is part of the state's identity and passes to every
 * state after it, so a dead end can say whether the depth limit may be to
 * blame (grammars that never nest that deep never have a CUT state). */
#define ST_ACCEPT 1
#define ST_CUT 2
/* The two states with no thread that do not accept: nothing follows them. */
#define STATE_DEAD 0
#define STATE_DEAD_CUT 1
#define VISITED_SLOTS (1u << 17) /* > 2 x MAX_CLOSURE_WORK */

struct grammar_matcher {
    const grammar *g;
    const grammar_vocab *v;
    /* call stacks: node i returns to ret[i] with parent[i]; 0 = empty */
    int32_t *stk_ret, *stk_parent;
    uint16_t *stk_depth;
    size_t n_stk, cap_stk, cap_stk2, cap_stk3;
    int32_t *stk_slots;
    size_t stk_mask;
    /* DFA states: threads[st_off[s] .. + st_n[s]), flags st_flags[s] (ST_*) */
    thread *thr;
    size_t n_thr, cap_thr;
    uint32_t *st_off;
    int32_t *st_n;
    uint8_t *st_flags;
    size_t n_st, cap_st, cap_st2, cap_st3;
    int32_t *st_slots;
    size_t st_mask;
    int32_t *trans; /* n_st x n_classes: the next state's row (id x n_classes), -1 = not computed yet */
    size_t cap_trans;
    /* closure scratch */
    thread *work, *out;
    size_t cap_work, cap_out, n_out;
    uint64_t *visited_key;
    uint32_t *visited_stamp;
    uint32_t stamp;
    /* the output so far */
    int32_t start, cur;
    size_t n_bytes;
    char tail[24]; /* its last bytes, for error messages */
    /* masking */
    int walk_cut; /* the last walk met a prefix that died at the depth limit */
    int32_t *walk;
    uint64_t *allowed;
    int n_allowed;
};

static size_t cache_bytes(const grammar_matcher *m)
{
    return m->n_thr * sizeof(thread) + m->n_st * (16 + (size_t)m->g->n_classes * 4) + m->n_stk * 12 +
           (m->st_mask + m->stk_mask + 2) * 4;
}

/* Interns (ret, parent); -1 when out of memory. */
static int32_t stack_push(grammar_matcher *m, int32_t ret, int32_t parent)
{
    if (m->n_stk * 2 >= m->stk_mask) {
        size_t cap = (m->stk_mask + 1) * 2;
        int32_t *slots = malloc(cap * sizeof *slots);
        if (!slots) return -1;
        memset(slots, 0xFF, cap * sizeof *slots);
        for (size_t s = 1; s < m->n_stk; s++) {
            uint64_t key = (uint64_t)(uint32_t)m->stk_ret[s] << 32 | (uint32_t)m->stk_parent[s];
            size_t i = fnv(FNV_OFFSET, &key, sizeof key) & (cap - 1);
            while (slots[i] >= 0) i = (i + 1) & (cap - 1);
            slots[i] = (int32_t)s;
        }
        free(m->stk_slots);
        m->stk_slots = slots;
        m->stk_mask = cap - 1;
    }
    uint64_t key = (uint64_t)(uint32_t)ret << 32 | (uint32_t)parent;
    size_t i = fnv(FNV_OFFSET, &key, sizeof key) & m->stk_mask;
    for (; m->stk_slots[i] >= 0; i = (i + 1) & m->stk_mask) {
        int32_t s = m->stk_slots[i];
        if (m->stk_ret[s] == ret && m->stk_parent[s] == parent) return s;
    }
    size_t n = m->n_stk + 1;
    if (grow((void **)&m->stk_ret, &m->cap_stk, n, sizeof *m->stk_ret) ||
        grow((void **)&m->stk_parent, &m->cap_stk2, n, sizeof *m->stk_parent) ||
        grow((void **)&m->stk_depth, &m->cap_stk3, n, sizeof *m->stk_depth))
        return -1;
    int32_t s = (int32_t)m->n_stk++;
    m->stk_ret[s] = ret;
    m->stk_parent[s] = parent;
    m->stk_depth[s] = (uint16_t)(m->stk_depth[parent] + 1);
    m->stk_slots[i] = s;
    return s;
}

static uint64_t state_hash(const thread *t, int32_t n, int flags)
{
    return fnv(fnv(FNV_OFFSET, &flags, sizeof flags), t, (size_t)n * sizeof *t);
}

static void state_slot_insert(int32_t *slots, size_t mask, uint64_t h, int32_t s)
{
    size_t i = h & mask;
    while (slots[i] >= 0) i = (i + 1) & mask;
    slots[i] = s;
}

/* Interns the state (threads sorted, unique); its id, or -1 out of memory. */
static int32_t state_intern(grammar_matcher *m, const thread *t, int32_t n, int flags)
{
    if (m->n_st * 2 >= m->st_mask) {
        size_t cap = (m->st_mask + 1) * 2;
        int32_t *slots = malloc(cap * sizeof *slots);
        if (!slots) return -1;
        memset(slots, 0xFF, cap * sizeof *slots);
        for (size_t s = 0; s < m->n_st; s++)
            state_slot_insert(slots, cap - 1, state_hash(m->thr + m->st_off[s], m->st_n[s], m->st_flags[s]), (int32_t)s);
        free(m->st_slots);
        m->st_slots = slots;
        m->st_mask = cap - 1;
    }
    uint64_t h = state_hash(t, n, flags);
    size_t i = h & m->st_mask;
    for (; m->st_slots[i] >= 0; i = (i + 1) & m->st_mask) {
        int32_t s = m->st_slots[i];
        if (m->st_n[s] == n && m->st_flags[s] == flags && (!n || memcmp(m->thr + m->st_off[s], t, (size_t)n * sizeof *t) == 0))
            return s;
    }
    size_t ns = m->n_st + 1, nc = (size_t)m->g->n_classes;
    if (grow((void **)&m->thr, &m->cap_thr, m->n_thr + (size_t)n, sizeof *m->thr) ||
        grow((void **)&m->st_off, &m->cap_st, ns, sizeof *m->st_off) ||
        grow((void **)&m->st_n, &m->cap_st2, ns, sizeof *m->st_n) ||
        grow((void **)&m->st_flags, &m->cap_st3, ns, sizeof *m->st_flags) ||
        grow((void **)&m->trans, &m->cap_trans, ns * nc, sizeof *m->trans))
        return -1;
    int32_t s = (int32_t)m->n_st++;
    if (n) memcpy(m->thr + m->n_thr, t, (size_t)n * sizeof *t);
    m->st_off[s] = (uint32_t)m->n_thr;
    m->n_thr += (size_t)n;
    m->st_n[s] = n;
    m->st_flags[s] = (uint8_t)flags;
    /* a state with no thread waiting on a byte goes nowhere */
    for (size_t c = 0; c < nc; c++) m->trans[(size_t)s * nc + c] = n ? -1 : STATE_DEAD;
    m->st_slots[i] = s;
    return s;
}

static int compare_thread(const void *a, const void *b)
{
    const thread *x = a, *y = b;
    if (x->pc != y->pc) return x->pc < y->pc ? -1 : 1;
    return (x->stk > y->stk) - (x->stk < y->stk);
}

/* First visit of (pc, stk) in this closure? */
static int first_visit(grammar_matcher *m, thread t)
{
    uint64_t key = (uint64_t)(uint32_t)t.pc << 32 | (uint32_t)t.stk;
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 47) & (VISITED_SLOTS - 1);
    for (;; i = (i + 1) & (VISITED_SLOTS - 1)) {
        if (m->visited_stamp[i] != m->stamp) {
            m->visited_stamp[i] = m->stamp;
            m->visited_key[i] = key;
            return 1;
        }
        if (m->visited_key[i] == key) return 0;
    }
}

static int push_work(grammar_matcher *m, size_t *top, int32_t pc, int32_t stk)
{
    if (grow((void **)&m->work, &m->cap_work, *top + 1, sizeof *m->work)) return -1;
    m->work[(*top)++] = (thread){pc, stk};
    return 0;
}

/* Follows the epsilon moves from the `top` threads on m->work and interns
 * the threads that end waiting on a byte, with `flags` (ST_CUT from the state
 * before) and what this closure adds; the state id, or -1 with err. */
static int32_t closure(grammar_matcher *m, size_t top, int flags, char *err, size_t errlen)
{
    const grammar *g = m->g;
    if (++m->stamp == 0) { /* the stamps wrapped: forget every old visit */
        memset(m->visited_stamp, 0, VISITED_SLOTS * sizeof *m->visited_stamp);
        m->stamp = 1;
    }
    int work = 0;
    m->n_out = 0;
    while (top) {
        thread t = m->work[--top];
        if (!first_visit(m, t)) continue;
        if (++work > MAX_CLOSURE_WORK)
            return fail(err, errlen, "grammar too ambiguous: more than %d parse positions after %zu bytes",
                        MAX_CLOSURE_WORK, m->n_bytes);
        const insn *in = &g->code[t.pc];
        int rc = 0;
        switch (in->op) {
        case OP_BYTE:
            if (m->n_out >= MAX_THREADS)
                return fail(err, errlen, "grammar too ambiguous: more than %d parses alive at once after %zu bytes",
                            MAX_THREADS, m->n_bytes);
            if (grow((void **)&m->out, &m->cap_out, m->n_out + 1, sizeof *m->out)) rc = -1;
            else m->out[m->n_out++] = t;
            break;
        case OP_SPLIT: rc = push_work(m, &top, in->b, t.stk) || push_work(m, &top, in->a, t.stk); break;
        case OP_JMP: rc = push_work(m, &top, in->a, t.stk); break;
        case OP_CALL:
            if (in->b < 0) {
                rc = push_work(m, &top, g->rule_start[in->a], t.stk);
            } else if (m->stk_depth[t.stk] >= GRAMMAR_MAX_DEPTH) {
                flags |= ST_CUT;
            } else {
                int32_t s = stack_push(m, in->b, t.stk);
                rc = s < 0 || push_work(m, &top, g->rule_start[in->a], s);
            }
            break;
        case OP_RET:
            if (t.stk == 0) flags |= ST_ACCEPT;
            else rc = push_work(m, &top, m->stk_ret[t.stk], m->stk_parent[t.stk]);
            break;
        default: break;
        }
        if (rc) return fail(err, errlen, "out of memory running the grammar");
    }
    if (m->n_out > 1) qsort(m->out, m->n_out, sizeof *m->out, compare_thread);
    int32_t s = state_intern(m, m->out, (int32_t)m->n_out, flags);
    return s < 0 ? fail(err, errlen, "out of memory running the grammar") : s;
}

/* Interns the two dead states first, so they get their fixed ids. */
static int intern_dead_states(grammar_matcher *m)
{
    return state_intern(m, NULL, 0, 0) == STATE_DEAD && state_intern(m, NULL, 0, ST_CUT) == STATE_DEAD_CUT ? 0 : -1;
}

/* The state after byte class cls from state s (computed on first use). */
static int32_t transition(grammar_matcher *m, int32_t s, int cls, char *err, size_t errlen)
{
    size_t nc = (size_t)m->g->n_classes;
    int32_t t = m->trans[(size_t)s * nc + (size_t)cls];
    if (t >= 0) return (int32_t)((size_t)t / nc);
    uint8_t byte = m->g->class_rep[cls];
    size_t top = 0;
    for (int32_t i = 0; i < m->st_n[s]; i++) {
        thread th = m->thr[m->st_off[s] + (uint32_t)i];
        const insn *in = &m->g->code[th.pc];
        if (in->op == OP_BYTE && in->lo <= byte && byte <= in->hi && push_work(m, &top, th.pc + 1, th.stk))
            return fail(err, errlen, "out of memory running the grammar");
    }
    int cut = m->st_flags[s] & ST_CUT;
    t = top ? closure(m, top, cut, err, errlen) : cut ? STATE_DEAD_CUT : STATE_DEAD;
    if (t >= 0) m->trans[(size_t)s * nc + (size_t)cls] = (int32_t)((size_t)t * nc);
    return t;
}

static int32_t start_state(grammar_matcher *m, char *err, size_t errlen)
{
    size_t top = 0;
    if (push_work(m, &top, m->g->rule_start[m->g->root], 0))
        return fail(err, errlen, "out of memory running the grammar");
    return closure(m, top, 0, err, errlen);
}

/* Empties the cache but keeps the start state and the current one (its
 * stacks are copied out as lists of return addresses and interned again). */
static int flush_cache(grammar_matcher *m, char *err, size_t errlen)
{
    int32_t n = m->st_n[m->cur], flags = m->st_flags[m->cur];
    thread *keep = malloc(((size_t)n + 1) * sizeof *keep);
    int32_t *rets = malloc(((size_t)n * GRAMMAR_MAX_DEPTH + 1) * sizeof *rets);
    uint16_t *depth = malloc(((size_t)n + 1) * sizeof *depth);
    if (!keep || !rets || !depth) {
        free(keep);
        free(rets);
        free(depth);
        return fail(err, errlen, "out of memory flushing the grammar cache");
    }
    for (int32_t i = 0; i < n; i++) {
        thread t = m->thr[m->st_off[m->cur] + (uint32_t)i];
        keep[i] = t;
        depth[i] = m->stk_depth[t.stk];
        int d = 0;
        for (int32_t s = t.stk; s; s = m->stk_parent[s]) rets[(size_t)i * GRAMMAR_MAX_DEPTH + d++] = m->stk_ret[s];
    }
    m->n_stk = 1;
    memset(m->stk_slots, 0xFF, (m->stk_mask + 1) * sizeof *m->stk_slots);
    m->n_st = 0;
    m->n_thr = 0;
    memset(m->st_slots, 0xFF, (m->st_mask + 1) * sizeof *m->st_slots);
    int rc = 0;
    if (intern_dead_states(m)) rc = fail(err, errlen, "out of memory flushing the grammar cache");
    else if ((m->start = start_state(m, err, errlen)) < 0) rc = -1;
    for (int32_t i = 0; i < n && !rc; i++) {
        int32_t s = 0;
        for (int d = depth[i] - 1; d >= 0 && s >= 0; d--) s = stack_push(m, rets[(size_t)i * GRAMMAR_MAX_DEPTH + d], s);
        if (s < 0) rc = fail(err, errlen, "out of memory flushing the grammar cache");
        keep[i].stk = s;
    }
    if (!rc) {
        qsort(keep, (size_t)n, sizeof *keep, compare_thread);
        m->cur = state_intern(m, keep, n, flags);
        if (m->cur < 0) rc = fail(err, errlen, "out of memory flushing the grammar cache");
    }
    free(keep);
    free(rets);
    free(depth);
    return rc;
}

void grammar_matcher_free(grammar_matcher *m)
{
    if (!m) return;
    free(m->stk_ret);
    free(m->stk_parent);
    free(m->stk_depth);
    free(m->stk_slots);
    free(m->thr);
    free(m->st_off);
    free(m->st_n);
    free(m->st_flags);
    free(m->st_slots);
    free(m->trans);
    free(m->work);
    free(m->out);
    free(m->visited_key);
    free(m->visited_stamp);
    free(m->walk);
    free(m->allowed);
    free(m);
}

int grammar_matcher_new(grammar_matcher **out, const grammar *g, const grammar_vocab *v, char *err, size_t errlen)
{
    *out = NULL;
    grammar_matcher *m = calloc(1, sizeof *m);
    if (!m) return fail(err, errlen, "out of memory creating the grammar matcher");
    m->g = g;
    m->v = v;
    m->stk_mask = 63;
    m->st_mask = 63;
    m->stk_slots = malloc(64 * sizeof *m->stk_slots);
    m->st_slots = malloc(64 * sizeof *m->st_slots);
    m->visited_key = malloc(VISITED_SLOTS * sizeof *m->visited_key);
    m->visited_stamp = calloc(VISITED_SLOTS, sizeof *m->visited_stamp);
    m->walk = malloc(((size_t)v->max_depth + 1) * sizeof *m->walk);
    m->allowed = calloc(((size_t)v->n_vocab + 64) / 64, sizeof *m->allowed); /* + the spare bit */
    if (!m->stk_slots || !m->st_slots || !m->visited_key || !m->visited_stamp || !m->walk || !m->allowed) goto oom;
    memset(m->stk_slots, 0xFF, 64 * sizeof *m->stk_slots);
    memset(m->st_slots, 0xFF, 64 * sizeof *m->st_slots);
    /* stack 0 is the empty stack */
    if (grow((void **)&m->stk_ret, &m->cap_stk, 1, 4) || grow((void **)&m->stk_parent, &m->cap_stk2, 1, 4) ||
        grow((void **)&m->stk_depth, &m->cap_stk3, 1, 2))
        goto oom;
    m->stk_ret[0] = m->stk_parent[0] = -1;
    m->stk_depth[0] = 0;
    m->n_stk = 1;
    if (intern_dead_states(m)) goto oom;
    if ((m->start = start_state(m, err, errlen)) < 0) {
        grammar_matcher_free(m);
        return -1;
    }
    grammar_matcher_reset(m);
    *out = m;
    return 0;
oom:
    grammar_matcher_free(m);
    return fail(err, errlen, "out of memory creating the grammar matcher");
}

void grammar_matcher_reset(grammar_matcher *m)
{
    m->cur = m->start;
    m->n_bytes = 0;
    m->n_allowed = -1;
    memset(m->tail, 0, sizeof m->tail);
}

int grammar_matcher_accepting(const grammar_matcher *m) { return m->st_flags[m->cur] & ST_ACCEPT; }
int grammar_matcher_done(const grammar_matcher *m) { return grammar_matcher_accepting(m) && m->st_n[m->cur] == 0; }

static void remember_bytes(grammar_matcher *m, const char *bytes, size_t len)
{
    size_t keep = sizeof m->tail;
    if (len >= keep) {
        memcpy(m->tail, bytes + len - keep, keep);
    } else {
        memmove(m->tail, m->tail + len, keep - len);
        memcpy(m->tail + keep - len, bytes, len);
    }
    m->n_bytes += len;
}

/* The output's last bytes as a quoted, escaped string. */
static void describe_tail(const grammar_matcher *m, char *buf, size_t cap)
{
    size_t n = m->n_bytes < sizeof m->tail ? m->n_bytes : sizeof m->tail, used = 0;
    const char *t = m->tail + sizeof m->tail - n;
    used += (size_t)snprintf(buf, cap, "%s\"", m->n_bytes > n ? "..." : "");
    for (size_t i = 0; i < n && used + 8 < cap; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == '"' || c == '\\') used += (size_t)snprintf(buf + used, cap - used, "\\%c", c);
        else if (c >= 0x20 && c < 0x7F) buf[used++] = (char)c, buf[used] = 0;
        else used += (size_t)snprintf(buf + used, cap - used, "\\x%02X", c);
    }
    snprintf(buf + used, cap - used, "\"");
}

/* The state after bytes from the current one (a dead state if they cannot
 * follow), -1 on an error. */
static int32_t run_bytes(grammar_matcher *m, const char *bytes, size_t len, char *err, size_t errlen)
{
    int32_t s = m->cur;
    for (size_t i = 0; i < len && s > STATE_DEAD_CUT; i++)
        s = transition(m, s, m->g->byte_class[(unsigned char)bytes[i]], err, errlen);
    return s;
}

int grammar_matcher_can_take(grammar_matcher *m, const char *bytes, size_t len, char *err, size_t errlen)
{
    int32_t s = run_bytes(m, bytes, len, err, errlen);
    return s < 0 ? -1 : s > STATE_DEAD_CUT;
}

static int advance(grammar_matcher *m, const char *bytes, size_t len, char *err, size_t errlen)
{
    int32_t s = run_bytes(m, bytes, len, err, errlen);
    if (s < 0) return -1;
    if (s <= STATE_DEAD_CUT) {
        char tail[128];
        describe_tail(m, tail, sizeof tail);
        return fail(err, errlen, "grammar: the output cannot continue with these %zu bytes after %s", len, tail);
    }
    m->cur = s;
    m->n_allowed = -1;
    remember_bytes(m, bytes, len);
    return 0;
}

int grammar_matcher_accept_bytes(grammar_matcher *m, const char *bytes, size_t len, char *err, size_t errlen)
{
    return advance(m, bytes, len, err, errlen);
}

int grammar_matcher_accept_token(grammar_matcher *m, int32_t id, char *err, size_t errlen)
{
    const grammar_vocab *v = m->v;
    if (id < 0 || id >= v->n_vocab) return fail(err, errlen, "grammar: token %d is outside the vocabulary", id);
    switch (v->kind[id]) {
    case GRAMMAR_TOKEN_END:
        if (!grammar_matcher_accepting(m))
            return fail(err, errlen, "grammar: end of generation before the output is complete");
        return 0;
    case GRAMMAR_TOKEN_TEXT: return advance(m, v->blob + v->off[id], v->len[id], err, errlen);
    default: return fail(err, errlen, "grammar: token %d is a special token, never allowed in the output", id);
    }
}

/* The further tokens ending at node i (binary search in vocab->extra). */
static void mark_extra_tokens(const grammar_vocab *v, int32_t node, uint64_t *allowed)
{
    size_t lo = 0, hi = v->n_extra;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v->extra[mid].node < node) lo = mid + 1;
        else hi = mid;
    }
    for (; lo < v->n_extra && v->extra[lo].node == node; lo++)
        allowed[v->extra[lo].id >> 6] |= 1ull << (v->extra[lo].id & 63);
}

/* One walk of the trie from the current state: sets the allowed bits of every
 * token whose bytes keep the parse alive, and m->walk_cut when some prefix
 * died only at the depth limit. -1 on an error; -2 when the cache outgrew
 * its hard limit (flush and walk again). */
static int walk_trie(grammar_matcher *m, char *err, size_t errlen)
{
    const grammar_vocab *v = m->v;
    const vnode *nodes = v->nodes;
    const uint8_t *cls = m->g->byte_class;
    const int32_t nc = m->g->n_classes, n_nodes = v->n_nodes;
    const int32_t *trans = m->trans; /* reloaded only when a transition is computed (it may move) */
    uint64_t *allowed = m->allowed;
    int32_t *row = m->walk; /* row[d]: the state after the first d bytes of the current path, as its table row */
    size_t words = ((size_t)v->n_vocab + 64) / 64; /* with the spare bit n_vocab */
    int32_t cut = 0;
    memset(allowed, 0, words * sizeof *allowed);
    m->walk_cut = 0;
    if (m->st_n[m->cur] == 0) return 0;
    row[0] = m->cur * nc;
    for (int32_t i = 0; i < n_nodes;) {
        const vnode *nd = &nodes[i];
        int32_t t = trans[row[nd->depth - 1] + cls[nd->byte]];
        if (t < 0) {
            if (cache_bytes(m) > CACHE_HARD_BYTES) return -2;
            int32_t s = transition(m, row[nd->depth - 1] / nc, cls[nd->byte], err, errlen);
            if (s < 0) return -1;
            trans = m->trans;
            t = s * nc;
        }
        if (t <= nc) { /* a dead state's row: no token below this prefix can be allowed */
            cut |= t;   /* STATE_DEAD_CUT's row is nc */
            i = nd->end;
            continue;
        }
        row[nd->depth] = t;
        allowed[nd->tok >> 6] |= 1ull << (nd->tok & 63);
        if (nd->more) mark_extra_tokens(v, i, allowed);
        i++;
    }
    allowed[v->n_vocab >> 6] &= ~(1ull << (v->n_vocab & 63));
    m->walk_cut = cut != 0;
    int count = 0;
    for (size_t w = 0; w < words; w++) count += __builtin_popcountll(allowed[w]);
    return count;
}

int grammar_matcher_compute(grammar_matcher *m, char *err, size_t errlen)
{
    if (grammar_matcher_done(m)) return m->n_allowed = 0;
    if (cache_bytes(m) > CACHE_SOFT_BYTES && flush_cache(m, err, errlen)) return -1;
    int count = walk_trie(m, err, errlen);
    if (count == -2) {
        if (flush_cache(m, err, errlen)) return -1;
        count = walk_trie(m, err, errlen);
        if (count == -2)
            return fail(err, errlen, "grammar: one step needs more than %u MiB of automaton states",
                        CACHE_HARD_BYTES >> 20);
    }
    if (count < 0) return -1;
    if (grammar_matcher_accepting(m)) {
        for (int i = 0; i < m->v->n_end; i++) {
            int32_t id = m->v->end_ids[i];
            m->allowed[id >> 6] |= 1ull << (id & 63);
        }
        count += m->v->n_end;
    }
    if (count == 0 && !grammar_matcher_accepting(m)) {
        char tail[128];
        describe_tail(m, tail, sizeof tail);
        char why[96] = "";
        if ((m->st_flags[m->cur] & ST_CUT) || m->walk_cut)
            snprintf(why, sizeof why, " (the grammar nests rules deeper than %d calls; such paths are cut)",
                     GRAMMAR_MAX_DEPTH);
        return fail(err, errlen, "grammar: dead end after %zu bytes (%s): no token of the vocabulary can continue%s",
                    m->n_bytes, tail, why);
    }
    return m->n_allowed = count;
}

int grammar_matcher_allowed(const grammar_matcher *m, int32_t id)
{
    if (m->n_allowed <= 0 || id < 0 || id >= m->v->n_vocab) return 0;
    return (int)(m->allowed[id >> 6] >> (id & 63) & 1);
}

int grammar_matcher_mask(grammar_matcher *m, float *logits, char *err, size_t errlen)
{
    int count = grammar_matcher_compute(m, err, errlen);
    if (count <= 0) return count;
    int n = m->v->n_vocab;
    for (int w = 0; w * 64 < n; w++) {
        int base = w * 64, end = base + 64 < n ? base + 64 : n;
        uint64_t forbidden = ~m->allowed[w];
        if (end - base < 64) forbidden &= (1ull << (end - base)) - 1;
        if (forbidden == ~0ull) {
            for (int i = base; i < end; i++) logits[i] = -INFINITY;
            continue;
        }
        for (; forbidden; forbidden &= forbidden - 1) logits[base + __builtin_ctzll(forbidden)] = -INFINITY;
    }
    return count;
}
