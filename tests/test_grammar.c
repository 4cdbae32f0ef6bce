/*
 * test_grammar.c - constrained decoding (engine/grammar.c) and the JSON-Schema
 * conversion (bot/json_schema.c).
 *
 * What decides pass or fail, and why it is independent of the code tested:
 *  - Random grammars are built here as small ASTs, written out as GBNF, and
 *    compared string by string with a reference matcher in this file that
 *    computes the set of end positions of every node directly from the AST
 *    (no automaton, no compilation). Strings come from a random alphabet and
 *    from walks the matcher itself allows, so both directions are checked:
 *    nothing the reference accepts is rejected, and every walk the matcher
 *    allows can finish and is accepted by the reference.
 *  - Token masks are compared with brute force: a token is allowed exactly
 *    when its bytes, fed one by one, keep the parse alive (and special tokens
 *    never, end-of-generation tokens only where the output is complete).
 *  - JSON outputs are parsed by jansson and checked against the schema by a
 *    small validator in this file (types, enum, lengths in characters,
 *    integer ranges, item counts, required and unknown keys).
 *  - Integer ranges are checked for every integer near and inside the range.
 */
#include <jansson.h>
#include <math.h>
#include <time.h>

#include "../bot/json_schema.h"
#include "../engine/engine.h"
#include "../engine/gguf.h"
#include "../engine/grammar.h"
#include "../engine/tokenizer.h"
#include "review_schema.h"
#include "test.h"

static char err[1024];

static grammar *compile(const char *text)
{
    grammar *g = NULL;
    if (grammar_parse(&g, text, strlen(text), err, sizeof err)) return NULL;
    return g;
}

/* A vocabulary of the 256 single bytes (ids 0..255) and one end token (256). */
static grammar_vocab *byte_vocab(void)
{
    static char bytes[256];
    const char *pieces[257];
    uint32_t lens[257];
    uint8_t kinds[257];
    for (int i = 0; i < 256; i++) bytes[i] = (char)i, pieces[i] = &bytes[i], lens[i] = 1, kinds[i] = GRAMMAR_TOKEN_TEXT;
    pieces[256] = "", lens[256] = 0, kinds[256] = GRAMMAR_TOKEN_END;
    grammar_vocab *v = NULL;
    grammar_vocab_new(&v, 257, pieces, lens, kinds, err, sizeof err);
    return v;
}

/* 1 accepted, 0 rejected, -1 error (err). */
static int matches(grammar *g, grammar_vocab *v, const char *s, size_t len)
{
    grammar_matcher *m;
    if (grammar_matcher_new(&m, g, v, err, sizeof err)) return -1;
    int rc = grammar_matcher_accept_bytes(m, s, len, err, sizeof err) == 0 && grammar_matcher_accepting(m);
    grammar_matcher_free(m);
    return rc;
}

static uint64_t rng_state = 88172645463325252ull;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

/* ---- parse errors -------------------------------------------------------- */

static void test_parse_errors(void)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"", "no rule named 'root'"},
        {"root ::= x", "undefined rule 'x'"},
        {"root ::= \"abc", "unterminated literal"},
        {"root ::= [a-", "unterminated character class"},
        {"root ::= (\"a\"", "without its ')'"},
        {"root ::= \"\\q\"", "unknown escape"},
        {"root ::= \"\\u12\"", "needs 4 hex digits"},
        {"root ::= \"\\uD800\"", "names no character"},
        {"root ::= \"\\U00110000\"", "names no character"},
        {"root ::= \"\xff\"", "invalid UTF-8"},
        {"root ::= \"\xc0\x80\"", "invalid UTF-8"},
        {"root ::= \"\xed\xa0\x80\"", "invalid UTF-8"},
        {"root ::= \"a\nb\"", "control character"},
        {"root ::= [z-a]", "backwards"},
        {"root ::= \"a\"{3,2}", "maximum is below the minimum"},
        {"root ::= \"a\"{2000000}", "repetition count above"},
        {"root ::= \"a\"{2", "expected ',' or '}'"},
        {"root ::= \"a\"\nroot ::= \"b\"", "defined twice"},
        {"root ::= root \"a\" | \"b\"", "left-recursive"},
        {"root ::= a\na ::= b \"x\" | \"z\"\nb ::= \"y\"? a", "left-recursive"},
        {"root ::= \"a\" root", "accepts no output"},
        {"root ::= x\nx ::= \"a\" y\ny ::= \"b\" x", "accepts no output"},
        {"root ::= []", "accepts no output"},
        {"root ::= ::=", "expected"},
        {"root = \"a\"", "expected '::='"},
        {"root ::= \"a\" )", "unexpected ')'"},
        {"root ::= (\"ab\"{1000}){1000}", "grammar too large"},
        {"root ::= x{0,1000000}\nx ::= \"a\"", "grammar too large"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        grammar *g = compile(cases[i].text);
        EXPECT(!g, "case %zu compiled: %s", i, cases[i].text);
        grammar_free(g);
        EXPECT(g || strstr(err, cases[i].want), "case %zu: error \"%s\" lacks \"%s\"", i, err, cases[i].want);
    }
    /* positions are reported */
    grammar *g = compile("root ::= \"a\"\n  x\n");
    EXPECT(!g && strstr(err, "line 2 column 3") && strstr(err, "undefined rule 'x'"), "position: %s", err);
    /* too deep parentheses */
    char deep[400] = "root ::= ";
    for (int i = 0; i < 100; i++) strcat(deep, "(");
    strcat(deep, "\"a\"");
    for (int i = 0; i < 100; i++) strcat(deep, ")");
    EXPECT(!compile(deep) && strstr(err, "nested more than"), "deep parentheses: %s", err);
    /* too much text */
    size_t big = GRAMMAR_MAX_TEXT + 1;
    char *text = malloc(big);
    REQUIRE(text, "out of memory");
    memset(text, ' ', big);
    memcpy(text, "root ::= \"a\"", 12);
    grammar *gb = NULL;
    EXPECT(grammar_parse(&gb, text, big, err, sizeof err) == -1 && strstr(err, "larger than"), "big: %s", err);
    free(text);
    /* postfixes cannot nest the AST without bound */
    char postfix[2000] = "root ::= \"a\"";
    for (int i = 0; i < 600; i++) strcat(postfix, "?");
    EXPECT(!compile(postfix) && strstr(err, "nested too deeply"), "postfix chain: %s", err);
}

/* ---- accepted and rejected strings ------------------------------------- */

static void test_accept_reject(void)
{
    static const struct {
        const char *grammar, *text;
        int want;
    } cases[] = {
        {"root ::= \"abc\"", "abc", 1},
        {"root ::= \"abc\"", "ab", 0},
        {"root ::= \"abc\"", "abcd", 0},
        {"root ::= \"\"", "", 1},
        {"root ::= [a-z]+", "hello", 1},
        {"root ::= [a-z]+", "", 0},
        {"root ::= [a-z]+", "Hello", 0},
        {"root ::= [a-z]*", "", 1},
        {"root ::= [a-z]{2,3}", "a", 0},
        {"root ::= [a-z]{2,3}", "ab", 1},
        {"root ::= [a-z]{2,3}", "abc", 1},
        {"root ::= [a-z]{2,3}", "abcd", 0},
        {"root ::= [a-z]{2}", "ab", 1},
        {"root ::= [a-z]{2,}", "abcdefgh", 1},
        {"root ::= [a-z]{,2}", "", 1},
        {"root ::= [a-z]{,2}", "abc", 0},
        {"root ::= \"a\"? \"b\"", "b", 1},
        {"root ::= \"a\"? \"b\"", "ab", 1},
        {"root ::= \"a\"? \"b\"", "aab", 0},
        {"root ::= (\"ab\" | \"cd\")+ \"!\"", "abcdab!", 1},
        {"root ::= (\"ab\" | \"cd\")+ \"!\"", "abc!", 0},
        {"root ::= [^\"\\\\]*", "h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x8e\x89", 1},
        {"root ::= [^\"\\\\]*", "say \"hi\"", 0},
        {"root ::= [^a]", "\xc3\xa9", 1},
        {"root ::= [^a]", "a", 0},
        {"root ::= [^a]", "\xc3", 0},          /* half a character */
        {"root ::= [^a]", "\xed\xa0\x80", 0},  /* a surrogate is not a character */
        {"root ::= [^a]", "\xc0\xaf", 0},      /* overlong */
        {"root ::= .", "\xf4\x8f\xbf\xbf", 1}, /* U+10FFFF */
        {"root ::= .", "\xf4\x90\x80\x80", 0}, /* past U+10FFFF */
        {"root ::= [\\u00e0-\\u00ff]", "\xc3\xa9", 1},
        {"root ::= [\\u00e0-\\u00ff]", "\xc3\x9f", 0},
        {"root ::= [\\x00-\\x7f]+", "tab\there", 1},
        {"root ::= [\\U0001F000-\\U0001FFFF]", "\xf0\x9f\x8e\x89", 1},
        {"root ::= \"\\u4e16\\x41\\n\"", "\xe4\xb8\x96" "A\n", 1},
        {"root ::= [\\]\\-\\\\]+", "]-\\", 1},
        {"root ::= [a-]", "-", 1},
        {"root ::= x \"!\"\nx ::= \"a\" | \"b\" x", "bbba!", 1},
        {"root ::= x \"!\"\nx ::= \"a\" | \"b\" x", "bbb!", 0},
        {"root ::= \"(\" root \")\" | \"x\"", "((x))", 1},
        {"root ::= \"(\" root \")\" | \"x\"", "((x)", 0},
        {"root ::= list\nlist ::= item (\",\" list)?\nitem ::= [0-9]+", "1,22,333", 1},
        {"root ::= list\nlist ::= item (\",\" list)?\nitem ::= [0-9]+", "1,,2", 0},
        {"# comment\nroot ::= a # trailing\n  | b\na ::= \"x\"\nb ::= \"y\"", "y", 1},
        {"root ::= (\"\"{100000}){100000} \"a\"", "a", 1},
        {"root ::= (\"a\"*)* \"b\"", "aaab", 1},
        {"root ::= (\"a\"?)+ \"b\"", "b", 1},
    };
    grammar_vocab *v = byte_vocab();
    REQUIRE(v, "vocab: %s", err);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        grammar *g = compile(cases[i].grammar);
        EXPECT(g, "case %zu does not compile: %s", i, err);
        if (!g) continue;
        int got = matches(g, v, cases[i].text, strlen(cases[i].text));
        EXPECT(got == cases[i].want, "case %zu: %s on \"%s\": got %d want %d (%s)", i, cases[i].grammar,
               cases[i].text, got, cases[i].want, got < 0 ? err : "");
        grammar_free(g);
    }
    grammar_vocab_free(v);
}

/* A list of 20000 items runs in constant stack (the recursive call is a tail call). */
static void test_tail_recursion(void)
{
    grammar *g = compile("root ::= list\nlist ::= \"a\" (\",\" list)?");
    grammar_vocab *v = byte_vocab();
    REQUIRE(g && v, "setup: %s", err);
    size_t n = 20000 * 2 - 1;
    char *s = malloc(n);
    REQUIRE(s, "out of memory");
    for (size_t i = 0; i < n; i++) s[i] = i % 2 ? ',' : 'a';
    EXPECT(matches(g, v, s, n) == 1, "long list rejected: %s", err);
    free(s);
    grammar_free(g);
    grammar_vocab_free(v);
}

/* Nesting deeper than GRAMMAR_MAX_DEPTH calls is cut, not followed forever. */
static void test_nesting_limit(void)
{
    grammar *g = compile("root ::= \"(\" root \")\" | \"x\"");
    grammar_vocab *v = byte_vocab();
    REQUIRE(g && v, "setup: %s", err);
    char s[2 * 400 + 2];
    for (int depth = 200; depth <= 300; depth += 100) {
        int n = 0;
        for (int i = 0; i < depth; i++) s[n++] = '(';
        s[n++] = 'x';
        for (int i = 0; i < depth; i++) s[n++] = ')';
        int got = matches(g, v, s, (size_t)n);
        EXPECT(got == (depth < GRAMMAR_MAX_DEPTH), "depth %d: got %d", depth, got);
    }
    grammar_free(g);
    grammar_vocab_free(v);
}

/* ---- random grammars against a reference matcher ---------------------- */

enum { R_LIT, R_CLASS, R_SEQ, R_ALT, R_REP, R_REF };

typedef struct {
    int kind;
    char lit[8];            /* R_LIT: UTF-8 */
    uint32_t lo, hi;        /* R_CLASS: codepoints */
    int negate;
    int min, max;           /* R_REP: max -1 = unbounded */
    int kids[3], n_kids;    /* R_SEQ, R_ALT, R_REP (kids[0]) */
    int rule;               /* R_REF */
} rnode;

#define MAX_RNODES 256
#define MAX_RRULES 4
static rnode rn[MAX_RNODES];
static int n_rn, rule_body[MAX_RRULES], n_rrules;
static const char *ref_text;
static int ref_len;

static int rnode_new(int kind)
{
    memset(&rn[n_rn], 0, sizeof rn[0]);
    rn[n_rn].kind = kind;
    return n_rn++;
}

static int gen_leaf(void)
{
    static const char *const lits[] = {"a", "b", "ab", "(", "\xc3\xa9", "", "ba"};
    static const uint32_t ranges[][2] = {{'a', 'b'}, {'b', 'b'}, {'a', 0xe9}, {0xe0, 0xff}};
    if (rnd(3)) {
        int n = rnode_new(R_LIT);
        strcpy(rn[n].lit, lits[rnd(7)]);
        return n;
    }
    int n = rnode_new(R_CLASS), r = (int)rnd(4);
    rn[n].lo = ranges[r][0], rn[n].hi = ranges[r][1], rn[n].negate = !rnd(4);
    return n;
}

/* Refs go to later rules (no cycles) or, guarded by "(" and with a literal
 * alternative, to any rule: recursion that always consumes first. */
static int gen_node(int rule, int depth)
{
    if (depth >= 3 || n_rn > MAX_RNODES - 16) return gen_leaf();
    int choice = (int)rnd(6), n;
    switch (choice) {
    case 0:
    case 1:
        n = rnode_new(choice == 0 ? R_SEQ : R_ALT);
        rn[n].n_kids = 2 + (int)rnd(2);
        for (int i = 0; i < rn[n].n_kids; i++) {
            int k = gen_node(rule, depth + 1);
            rn[n].kids[i] = k;
        }
        return n;
    case 2: {
        static const int reps[][2] = {{0, -1}, {1, -1}, {0, 1}, {2, 3}, {0, 2}, {1, 1}, {3, 3}};
        int r = (int)rnd(7);
        n = rnode_new(R_REP);
        rn[n].min = reps[r][0], rn[n].max = reps[r][1];
        int k = gen_node(rule, depth + 1);
        rn[n].kids[0] = k, rn[n].n_kids = 1;
        return n;
    }
    case 3:
        if (rule + 1 < n_rrules) {
            n = rnode_new(R_REF);
            rn[n].rule = rule + 1 + (int)rnd((uint32_t)(n_rrules - rule - 1));
            return n;
        }
        return gen_leaf();
    case 4: { /* "x" | "(" R ")" */
        int alt = rnode_new(R_ALT), lit = rnode_new(R_LIT), seq = rnode_new(R_SEQ);
        int open = rnode_new(R_LIT), ref = rnode_new(R_REF), close = rnode_new(R_LIT);
        strcpy(rn[lit].lit, "x");
        strcpy(rn[open].lit, "(");
        strcpy(rn[close].lit, ")");
        rn[ref].rule = (int)rnd((uint32_t)n_rrules);
        rn[seq].kids[0] = open, rn[seq].kids[1] = ref, rn[seq].kids[2] = close, rn[seq].n_kids = 3;
        rn[alt].kids[0] = lit, rn[alt].kids[1] = seq, rn[alt].n_kids = 2;
        return alt;
    }
    default: return gen_leaf();
    }
}

static void put_cp(char **p, uint32_t cp)
{
    if (cp == ']' || cp == '\\' || cp == '-' || cp == '^' || cp == '"') *(*p)++ = '\\';
    if (cp < 0x80) *(*p)++ = (char)cp;
    else *p += sprintf(*p, "\\u%04X", cp);
}

static void render(int n, char **p)
{
    const rnode *r = &rn[n];
    switch (r->kind) {
    case R_LIT: *p += sprintf(*p, "\"%s\"", r->lit); break;
    case R_CLASS:
        *(*p)++ = '[';
        if (r->negate) *(*p)++ = '^';
        put_cp(p, r->lo);
        if (r->hi != r->lo) *(*p)++ = '-', put_cp(p, r->hi);
        *(*p)++ = ']';
        break;
    case R_SEQ:
    case R_ALT:
        *(*p)++ = '(';
        for (int i = 0; i < r->n_kids; i++) {
            if (i) *p += sprintf(*p, r->kind == R_ALT ? " | " : " ");
            render(r->kids[i], p);
        }
        *(*p)++ = ')';
        break;
    case R_REP:
        *(*p)++ = '(';
        render(r->kids[0], p);
        *(*p)++ = ')';
        if (r->max < 0) *p += sprintf(*p, "{%d,}", r->min);
        else *p += sprintf(*p, "{%d,%d}", r->min, r->max);
        break;
    case R_REF: *p += sprintf(*p, "r%d", r->rule); break;
    }
}

/* Strict UTF-8 character at ref_text[pos]: its length, 0 if none. */
static int ref_char(int pos, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)ref_text + pos;
    int left = ref_len - pos;
    if (left <= 0) return 0;
    if (u[0] < 0x80) return *cp = u[0], 1;
    int n = u[0] >= 0xC2 && u[0] <= 0xDF ? 2 : u[0] >= 0xE0 && u[0] <= 0xEF ? 3 : u[0] >= 0xF0 && u[0] <= 0xF4 ? 4 : 0;
    if (!n || n > left) return 0;
    uint32_t v = u[0] & (0x7Fu >> n);
    for (int i = 1; i < n; i++) {
        if ((u[i] & 0xC0) != 0x80) return 0;
        v = v << 6 | (u[i] & 0x3Fu);
    }
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < least[n] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    return *cp = v, n;
}

/* Bit e set: node n matches ref_text[pos..e). */
static uint64_t ref_ends(int n, int pos)
{
    const rnode *r = &rn[n];
    uint64_t out = 0;
    switch (r->kind) {
    case R_LIT: {
        int len = (int)strlen(r->lit);
        if (pos + len <= ref_len && memcmp(ref_text + pos, r->lit, (size_t)len) == 0) out = 1ull << (pos + len);
        break;
    }
    case R_CLASS: {
        uint32_t cp;
        int len = ref_char(pos, &cp);
        if (len && ((cp >= r->lo && cp <= r->hi) != r->negate)) out = 1ull << (pos + len);
        break;
    }
    case R_SEQ: {
        uint64_t cur = 1ull << pos;
        for (int i = 0; i < r->n_kids && cur; i++) {
            uint64_t next = 0;
            for (int p = 0; p <= ref_len; p++)
                if (cur >> p & 1) next |= ref_ends(r->kids[i], p);
            cur = next;
        }
        out = cur;
        break;
    }
    case R_ALT:
        for (int i = 0; i < r->n_kids; i++) out |= ref_ends(r->kids[i], pos);
        break;
    case R_REP: {
        uint64_t cur = 1ull << pos;
        int limit = r->max < 0 ? r->min + ref_len + 2 : r->max;
        if (r->min == 0) out = cur;
        for (int i = 1; i <= limit && cur; i++) {
            uint64_t next = 0;
            for (int p = 0; p <= ref_len; p++)
                if (cur >> p & 1) next |= ref_ends(r->kids[0], p);
            cur = next;
            if (i >= r->min) out |= cur;
        }
        break;
    }
    case R_REF: out = ref_ends(rule_body[r->rule], pos); break;
    }
    return out;
}

static int ref_accepts(const char *s, int len)
{
    ref_text = s;
    ref_len = len;
    return ref_ends(rule_body[0], 0) >> len & 1;
}

static void test_random_grammars(void)
{
    static const char *const alphabet[] = {"a", "b", "(", ")", "x", "\xc3\xa9", "\xc3\xbf"};
    grammar_vocab *v = byte_vocab();
    REQUIRE(v, "vocab: %s", err);
    int n_grammars = 0, n_accepted = 0, n_walks_done = 0, n_ambiguous = 0;
    char text[8192];
    for (int trial = 0; trial < 400; trial++) {
        n_rn = 0;
        n_rrules = 1 + (int)rnd(MAX_RRULES);
        for (int r = n_rrules - 1; r >= 0; r--) rule_body[r] = gen_node(r, 0);
        char *p = text;
        for (int r = 0; r < n_rrules; r++) {
            if (r) p += sprintf(p, "r%d ::= ", r);
            else p += sprintf(p, "root ::= ");
            render(rule_body[r], &p);
            *p++ = '\n';
        }
        *p = 0;
        char full[8300]; /* references to rule 0 are to r0 */
        snprintf(full, sizeof full, "%sr0 ::= root\n", text);
        grammar *g = compile(full);
        if (!g) {
            EXPECT(0, "random grammar does not compile: %s\n%s", err, full);
            break;
        }
        n_grammars++;
        grammar_matcher *m;
        REQUIRE(!grammar_matcher_new(&m, g, v, err, sizeof err), "matcher: %s", err);
        /* random strings: the matcher agrees with the reference */
        for (int k = 0; k < 60; k++) {
            char s[32];
            int len = 0, n = (int)rnd(8);
            for (int i = 0; i < n; i++) {
                const char *a = alphabet[rnd(7)];
                memcpy(s + len, a, strlen(a));
                len += (int)strlen(a);
            }
            grammar_matcher_reset(m);
            err[0] = 0;
            int got = grammar_matcher_accept_bytes(m, s, (size_t)len, err, sizeof err) == 0 && grammar_matcher_accepting(m);
            if (strstr(err, "too ambiguous")) { /* a documented limit, not a wrong answer */
                n_ambiguous++;
                continue;
            }
            int want = ref_accepts(s, len);
            n_accepted += want;
            if (got != want) {
                EXPECT(0, "grammar\n%s on \"%.*s\": matcher %d, reference %d", full, len, s, got, want);
                break;
            }
        }
        /* walks the mask allows always reach an accepted string */
        for (int k = 0; k < 10; k++) {
            char s[64];
            int len = 0, finished = 0;
            grammar_matcher_reset(m);
            while (len < 30) {
                int n = grammar_matcher_compute(m, err, sizeof err);
                if (n < 0 && strstr(err, "too ambiguous")) {
                    n_ambiguous++;
                    break;
                }
                if (n < 0) {
                    EXPECT(0, "grammar\n%s: walk \"%.*s\": %s", full, len, s, err);
                    break;
                }
                if (n == 0 || (grammar_matcher_allowed(m, 256) && rnd(3) == 0)) {
                    finished = 1;
                    break;
                }
                int32_t pick = -1;
                for (int seen = 0, id = 0; id < 256; id++) /* uniform among the allowed bytes */
                    if (grammar_matcher_allowed(m, id) && rnd((uint32_t)++seen) == 0) pick = id;
                if (pick < 0) break; /* only the end token */
                s[len++] = (char)pick;
                REQUIRE(!grammar_matcher_accept_token(m, pick, err, sizeof err), "allowed byte refused: %s", err);
            }
            if (!finished) { /* keep going greedily towards the end: the shortest way out must exist */
                continue;
            }
            n_walks_done++;
            EXPECT(ref_accepts(s, len), "grammar\n%s: walk \"%.*s\" finished but the reference rejects it", full, len, s);
        }
        grammar_matcher_free(m);
        grammar_free(g);
        if (test_cur_failed) break;
    }
    grammar_vocab_free(v);
    EXPECT(n_accepted > 100 && n_walks_done > 1000, "too few positive cases: %d accepted strings, %d walks",
           n_accepted, n_walks_done);
    /* grammars like (x | "(" root ")")*{0,2} keep 2^depth parses apart: rare among random ones */
    EXPECT(n_ambiguous < n_grammars * 70 / 100, "%d of %d grammars x 70 cases hit the ambiguity limit", n_ambiguous,
           n_grammars);
}

/* ---- masks over multi-byte tokens ------------------------------------- */

/* Checks the current mask against brute force over every token. */
static int check_mask_brute(grammar_matcher *m, int n_vocab, const char *const *pieces, const uint32_t *lens,
                            const uint8_t *kinds, int allowed_count)
{
    int count = 0;
    if (allowed_count == 0) { /* stop: the output must be complete and no token's bytes may follow */
        int bad = !grammar_matcher_accepting(m);
        EXPECT(!bad, "stop announced but the output is not complete");
        for (int id = 0; id < n_vocab && !bad; id++) {
            if (kinds[id] != GRAMMAR_TOKEN_TEXT || lens[id] == 0) continue;
            int can = grammar_matcher_can_take(m, pieces[id], lens[id], err, sizeof err);
            bad = can != 0;
            EXPECT(!bad, "stop announced but token %d (\"%.*s\") can follow (%d)", id, (int)lens[id], pieces[id], can);
        }
        return bad ? -1 : 0;
    }
    for (int id = 0; id < n_vocab; id++) {
        int want;
        if (kinds[id] == GRAMMAR_TOKEN_END) want = grammar_matcher_accepting(m);
        else if (kinds[id] != GRAMMAR_TOKEN_TEXT || lens[id] == 0) want = 0;
        else want = grammar_matcher_can_take(m, pieces[id], lens[id], err, sizeof err) == 1;
        int got = grammar_matcher_allowed(m, id);
        count += got;
        if (got != want) {
            EXPECT(0, "token %d (\"%.*s\", kind %d): allowed %d, brute force %d", id, (int)lens[id], pieces[id],
                   kinds[id], got, want);
            return -1;
        }
    }
    EXPECT(count == allowed_count, "count %d but %d allowed", allowed_count, count);
    return 0;
}

/* A hand-made vocabulary with shared prefixes, duplicates, tokens that split
 * UTF-8 characters, special tokens and empty ones. */
static void test_mask_small_vocab(void)
{
    static const char *const pieces[] = {
        "a", "ab", "abc", "b", "\"", "\"a", "a\"", "\xc3", "\xa9", "\xc3\xa9", "\xa9z", "z", "ab", "<|im_end|>", "",
        "{", "}", " ", "  ", "\xe4\xb8", "\x96", "\xe4", "\xb8\x96", "\xe4\xb8\x96", "x\xc3", "<s>",
    };
    enum { N = sizeof pieces / sizeof pieces[0] };
    uint32_t lens[N];
    uint8_t kinds[N];
    for (int i = 0; i < N; i++) lens[i] = (uint32_t)strlen(pieces[i]), kinds[i] = GRAMMAR_TOKEN_TEXT;
    kinds[13] = GRAMMAR_TOKEN_END;
    kinds[25] = GRAMMAR_TOKEN_NEVER;
    grammar_vocab *v = NULL;
    REQUIRE(!grammar_vocab_new(&v, N, pieces, lens, kinds, err, sizeof err), "vocab: %s", err);
    grammar *g = compile("root ::= \"{\" \" \"? \"\\\"\" [^\"]{0,6} \"\\\"\" \" \"? \"}\"");
    REQUIRE(g, "grammar: %s", err);
    grammar_matcher *m;
    REQUIRE(!grammar_matcher_new(&m, g, v, err, sizeof err), "matcher: %s", err);
    for (int walk = 0; walk < 300 && !test_cur_failed; walk++) {
        grammar_matcher_reset(m);
        for (int step = 0; step < 40; step++) {
            int n = grammar_matcher_compute(m, err, sizeof err);
            REQUIRE(n >= 0, "walk %d: %s", walk, err);
            if (check_mask_brute(m, N, pieces, lens, kinds, n)) break;
            if (n == 0) break;
            int32_t pick = -1;
            for (int seen = 0, id = 0; id < N; id++)
                if (grammar_matcher_allowed(m, id) && rnd((uint32_t)++seen) == 0) pick = id;
            REQUIRE(!grammar_matcher_accept_token(m, pick, err, sizeof err), "accept %d: %s", pick, err);
            if (kinds[pick] == GRAMMAR_TOKEN_END) break;
        }
    }
    /* "ab" appears twice: both ids are allowed together */
    grammar_matcher_reset(m);
    REQUIRE(!grammar_matcher_accept_bytes(m, "{\"", 2, err, sizeof err), "%s", err);
    REQUIRE(grammar_matcher_compute(m, err, sizeof err) > 0, "%s", err);
    EXPECT(grammar_matcher_allowed(m, 1) && grammar_matcher_allowed(m, 12), "duplicate pieces not both allowed");
    /* half a character: after the lead byte only its continuation */
    REQUIRE(!grammar_matcher_accept_token(m, 7, err, sizeof err), "lead byte refused: %s", err);
    REQUIRE(grammar_matcher_compute(m, err, sizeof err) > 0, "%s", err);
    EXPECT(grammar_matcher_allowed(m, 8) && grammar_matcher_allowed(m, 10), "continuation byte not allowed");
    EXPECT(!grammar_matcher_allowed(m, 0) && !grammar_matcher_allowed(m, 4) && !grammar_matcher_allowed(m, 9),
           "a new character allowed in the middle of one");
    EXPECT(grammar_matcher_accept_token(m, 25, err, sizeof err) == -1 && strstr(err, "special token"),
           "special token accepted: %s", err);
    EXPECT(grammar_matcher_accept_token(m, 13, err, sizeof err) == -1, "end token accepted mid-output");
    grammar_matcher_free(m);
    grammar_free(g);
    grammar_vocab_free(v);
}

/* A vocabulary without the byte a grammar needs: a clear error, not a hang. */
static void test_dead_end(void)
{
    static const char *const pieces[] = {"a", "b", "ab", "<end>"};
    uint32_t lens[] = {1, 1, 2, 5};
    uint8_t kinds[] = {GRAMMAR_TOKEN_TEXT, GRAMMAR_TOKEN_TEXT, GRAMMAR_TOKEN_TEXT, GRAMMAR_TOKEN_END};
    grammar_vocab *v = NULL;
    REQUIRE(!grammar_vocab_new(&v, 4, pieces, lens, kinds, err, sizeof err), "vocab: %s", err);
    grammar *g = compile("root ::= \"a\" \"z\"");
    REQUIRE(g, "%s", err);
    grammar_matcher *m;
    REQUIRE(!grammar_matcher_new(&m, g, v, err, sizeof err), "%s", err);
    EXPECT(grammar_matcher_compute(m, err, sizeof err) == 1 && grammar_matcher_allowed(m, 0), "'a' not allowed");
    REQUIRE(!grammar_matcher_accept_token(m, 0, err, sizeof err), "%s", err);
    EXPECT(grammar_matcher_compute(m, err, sizeof err) == -1 && strstr(err, "dead end") && strstr(err, "\"a\""),
           "dead end not reported: %s", err);
    grammar_matcher_free(m);
    grammar_free(g);
    /* a grammar whose only sentences nest deeper than the call limit */
    char text[20000];
    char *p = text + sprintf(text, "root ::= c0\n");
    for (int i = 0; i < GRAMMAR_MAX_DEPTH + 10; i++) p += sprintf(p, "c%d ::= c%d \"!\"\n", i, i + 1);
    sprintf(p, "c%d ::= \"a\"\n", GRAMMAR_MAX_DEPTH + 10);
    g = compile(text);
    REQUIRE(g, "deep grammar: %s", err);
    REQUIRE(!grammar_matcher_new(&m, g, v, err, sizeof err), "%s", err);
    for (int again = 0; again < 2; again++) { /* the same after a reset, from the cached automaton */
        EXPECT(grammar_matcher_compute(m, err, sizeof err) == -1 && strstr(err, "dead end") && strstr(err, "deeper"),
               "deep grammar: %s", err);
        grammar_matcher_reset(m);
    }
    grammar_matcher_free(m);
    grammar_free(g);
    /* The depth limit is named only when it is to blame on this output: "b"
     * leads into the deep rules, "a" needs a "z" the vocabulary lacks. */
    char *tail = text + strlen(text);
    struct {
        const char *root, *first; /* first: the token taken before the dead end */
        int blame;
    } cases[] = {
        {"root ::= \"b\" c0 | \"a\" \"z\"\n", "a", 0},    /* "b" died at the limit, but not on this output */
        {"root ::= \"b\" (\"a\" c0 | \"z\")\n", "b", 1}, /* every next byte dies at the limit */
        {"root ::= \"a\" c0 | \"a\" \"z\"\n", "a", 1},    /* the output lost its deep parse on the way */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        sprintf(tail, "%s", cases[k].root);
        g = compile(text + strlen("root ::= c0\n"));
        REQUIRE(g, "case %zu: %s", k, err);
        REQUIRE(!grammar_matcher_new(&m, g, v, err, sizeof err), "%s", err);
        for (int walk = 0; walk < 2; walk++) {
            REQUIRE(grammar_matcher_compute(m, err, sizeof err) > 0, "case %zu: %s", k, err);
            REQUIRE(!grammar_matcher_accept_token(m, cases[k].first[0] - 'a', err, sizeof err), "case %zu: %s", k, err);
            int n = grammar_matcher_compute(m, err, sizeof err);
            EXPECT(n == -1 && strstr(err, "dead end") && !!strstr(err, "deeper") == cases[k].blame,
                   "case %zu, walk %d: %d, %s", k, walk, n, err);
            grammar_matcher_reset(m);
        }
        grammar_matcher_free(m);
        grammar_free(g);
    }
    grammar_vocab_free(v);
}

/* Exponentially many parse stacks: an error after a bounded amount of work. */
static void test_ambiguity_limit(void)
{
    grammar *g = compile("root ::= s\ns ::= \"a\" s \"b\" | \"a\" s \"c\" | \"\"");
    grammar_vocab *v = byte_vocab();
    REQUIRE(g && v, "setup: %s", err);
    grammar_matcher *m;
    REQUIRE(!grammar_matcher_new(&m, g, v, err, sizeof err), "%s", err);
    char a[40];
    memset(a, 'a', sizeof a);
    clock_t t0 = clock();
    int rc = grammar_matcher_accept_bytes(m, a, sizeof a, err, sizeof err);
    EXPECT(rc == -1 && strstr(err, "too ambiguous"), "40 a's: rc %d, %s", rc, err);
    EXPECT((double)(clock() - t0) / CLOCKS_PER_SEC < 30, "the limit took too long");
    grammar_matcher_free(m);
    grammar_free(g);
    grammar_vocab_free(v);
}

/* ---- JSON schema --------------------------------------------------------- */

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* A validator for the schema subset, written from the schema's meaning. */
static int validate(const json_t *schema, const json_t *v, char *why, size_t cap)
{
    if (json_is_true(schema) || json_object_size(schema) == 0) return 1;
    const json_t *x;
    if ((x = json_object_get(schema, "const"))) return json_equal(x, v) || (snprintf(why, cap, "not the const"), 0);
    if ((x = json_object_get(schema, "enum"))) {
        for (size_t i = 0; i < json_array_size(x); i++)
            if (json_equal(json_array_get(x, i), v)) return 1;
        snprintf(why, cap, "not in the enum");
        return 0;
    }
    if ((x = json_object_get(schema, "anyOf"))) {
        for (size_t i = 0; i < json_array_size(x); i++)
            if (validate(json_array_get(x, i), v, why, cap)) return 1;
        return 0;
    }
    const char *type = json_string_value(json_object_get(schema, "type"));
    long long min = json_integer_value(json_object_get(schema, "minLength"));
    const json_t *maxj = json_object_get(schema, "maxLength");
    if (!strcmp(type, "string")) {
        if (!json_is_string(v)) return snprintf(why, cap, "not a string"), 0;
        size_t n = utf8_chars(json_string_value(v));
        if ((long long)n < min || (maxj && (long long)n > json_integer_value(maxj)))
            return snprintf(why, cap, "string of %zu characters", n), 0;
        if (json_is_true(json_object_get(schema, "x-single-line")) && strpbrk(json_string_value(v), "\n\r\b\f"))
            return snprintf(why, cap, "line break in a single-line string"), 0;
        return 1;
    }
    if (!strcmp(type, "integer")) {
        if (!json_is_integer(v)) return snprintf(why, cap, "not an integer"), 0;
        long long i = json_integer_value(v);
        const json_t *lo = json_object_get(schema, "minimum"), *hi = json_object_get(schema, "maximum");
        if ((lo && i < json_integer_value(lo)) || (hi && i > json_integer_value(hi)))
            return snprintf(why, cap, "%lld out of range", i), 0;
        return 1;
    }
    if (!strcmp(type, "number")) return json_is_number(v) || (snprintf(why, cap, "not a number"), 0);
    if (!strcmp(type, "boolean")) return json_is_boolean(v) || (snprintf(why, cap, "not a boolean"), 0);
    if (!strcmp(type, "null")) return json_is_null(v) || (snprintf(why, cap, "not null"), 0);
    if (!strcmp(type, "array")) {
        if (!json_is_array(v)) return snprintf(why, cap, "not an array"), 0;
        const json_t *lo = json_object_get(schema, "minItems"), *hi = json_object_get(schema, "maxItems");
        size_t n = json_array_size(v);
        if ((lo && (long long)n < json_integer_value(lo)) || (hi && (long long)n > json_integer_value(hi)))
            return snprintf(why, cap, "%zu items", n), 0;
        for (size_t i = 0; i < n; i++)
            if (!validate(json_object_get(schema, "items"), json_array_get(v, i), why, cap)) return 0;
        return 1;
    }
    if (!strcmp(type, "object")) {
        if (!json_is_object(v)) return snprintf(why, cap, "not an object"), 0;
        const json_t *props = json_object_get(schema, "properties"), *req = json_object_get(schema, "required");
        for (size_t i = 0; i < json_array_size(req); i++)
            if (!json_object_get(v, json_string_value(json_array_get(req, i))))
                return snprintf(why, cap, "missing \"%s\"", json_string_value(json_array_get(req, i))), 0;
        const char *key;
        const json_t *val;
        json_object_foreach((json_t *)v, key, val) {
            const json_t *sub = json_object_get(props, key);
            if (!sub) return snprintf(why, cap, "unknown key \"%s\"", key), 0;
            if (!validate(sub, val, why, cap)) return 0;
        }
        return 1;
    }
    return snprintf(why, cap, "validator does not know type %s", type), 0;
}

static grammar *schema_grammar(const char *schema_text, int max_space)
{
    char *text = NULL;
    if (json_schema_text_to_grammar(schema_text, strlen(schema_text), max_space, &text, err, sizeof err)) return NULL;
    grammar *g = compile(text);
    if (!g) fprintf(stderr, "%s\n", text);
    free(text);
    return g;
}

static void test_schema_errors(void)
{
    static const struct {
        const char *schema, *want;
    } cases[] = {
        {"{\"type\": \"string\", \"pattern\": \"a+\"}", "unsupported keyword \"pattern\""},
        {"{\"type\": \"strin\"}", "unknown type"},
        {"{\"maxLength\": 3}", "give a \"type\""},
        {"{\"type\": \"integer\", \"minimum\": 5, \"maximum\": 4}", "no integer"},
        {"{\"type\": \"integer\", \"maximum\": 1e30}", "18 digits"},
        {"{\"type\": \"number\", \"minimum\": 0}", "integers only"},
        {"{\"type\": \"string\", \"maxLength\": 2, \"minLength\": 3}", "below minLength"},
        {"{\"type\": \"array\", \"maxItems\": -1}", "must be an integer"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"null\"}}, \"required\": [\"b\"]}", "\"required\""},
        {"{\"enum\": []}", "non-empty"},
        {"false", "must be an object"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\", \"format\": \"date\"}}}",
         "properties.a"},
        {"[1,", "json schema line 1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = NULL;
        int rc = json_schema_text_to_grammar(cases[i].schema, strlen(cases[i].schema), 4, &text, err, sizeof err);
        EXPECT(rc == -1 && !text && strstr(err, cases[i].want), "case %zu: rc %d, error \"%s\" lacks \"%s\"", i, rc,
               err, cases[i].want);
        free(text);
    }
}

static void test_schema_integers(void)
{
    static const long long ranges[][2] = {
        {0, 0}, {7, 7}, {0, 9}, {10, 99}, {1, 100000}, {-57, 1234}, {-100, -5}, {95, 1005}, {-9, 9}, {123, 4567},
    };
    grammar_vocab *v = byte_vocab();
    REQUIRE(v, "%s", err);
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        char schema[160];
        long long lo = ranges[r][0], hi = ranges[r][1];
        snprintf(schema, sizeof schema, "{\"type\": \"integer\", \"minimum\": %lld, \"maximum\": %lld}", lo, hi);
        grammar *g = schema_grammar(schema, 0);
        EXPECT(g, "range %lld..%lld: %s", lo, hi, err);
        if (!g) continue;
        for (long long i = lo - 150; i <= hi + 150; i++) {
            char s[32];
            int n = snprintf(s, sizeof s, "%lld", i);
            int got = matches(g, v, s, (size_t)n);
            if (got != (i >= lo && i <= hi)) {
                EXPECT(0, "range %lld..%lld: %lld got %d", lo, hi, i, got);
                break;
            }
        }
        static const char *const never[] = {"007", "-0", "+5", "", "1.0", "01"};
        for (size_t k = 0; k < sizeof never / sizeof never[0]; k++)
            EXPECT(matches(g, v, never[k], strlen(never[k])) == 0, "range %lld..%lld accepts \"%s\"", lo, hi, never[k]);
        grammar_free(g);
    }
    grammar *g = schema_grammar("{\"type\": \"integer\"}", 0);
    REQUIRE(g, "%s", err);
    EXPECT(matches(g, v, "-999999999999999999", 19) == 1 && matches(g, v, "9999999999999999999", 19) == 0 &&
               matches(g, v, "0", 1) == 1,
           "unbounded integers");
    grammar_free(g);
    grammar_vocab_free(v);
}


/* Documents written by jansson (any subset of the optional keys, compact and
 * indented) are accepted; broken ones are not. */
static void test_schema_documents(void)
{
    json_t *schema = json_loads(review_schema, 0, NULL);
    grammar *g = schema_grammar(review_schema, 24);
    grammar_vocab *v = byte_vocab();
    REQUIRE(schema && g && v, "setup: %s", err);
    static const char *const paths[] = {"src/util.c", "lib/\xc3\xa9t\xc3\xa9.py", "a \"quoted\" name"};
    for (int mask = 0; mask < 4; mask++) {
        for (int indent = 0; indent <= 2; indent += 2) {
            json_t *f = json_pack("{s:s, s:i}", "path", paths[mask % 3], "line", 42);
            if (mask & 1) json_object_set_new(f, "end_line", json_integer(44));
            json_object_set_new(f, "severity", json_string("risk"));
            json_object_set_new(f, "title", json_string("Off-by-one in \"loop\" \xe2\x80\x94 bound"));
            json_object_set_new(f, "body", json_string("Line one.\nLine two with a tab\tand \\ backslash."));
            if (mask & 2) json_object_set_new(f, "suggestion", json_string("for (i = 0; i < n; i++)"));
            json_t *doc = json_pack("{s:s, s:[o]}", "summary", "Two sentences. About the change.", "findings", f);
            char *text = json_dumps(doc, JSON_PRESERVE_ORDER | (indent ? JSON_INDENT(indent) : JSON_COMPACT));
            EXPECT(matches(g, v, text, strlen(text)) == 1, "jansson's document rejected:\n%s", text);
            free(text);
            json_decref(doc);
        }
    }
    static const char *const bad[] = {
        "{\"summary\": \"x\"}",                                        /* missing findings */
        "{\"findings\": [], \"summary\": \"x\"}",                      /* key order */
        "{\"summary\": \"x\", \"findings\": [],}",                     /* trailing comma */
        "{\"summary\": \"x\", \"findings\": [{\"path\": \"other.c\", \"line\": 1, \"severity\": \"bug\", "
        "\"title\": \"t\", \"body\": \"b\"}]}",                        /* path outside the enum */
        "{\"summary\": \"x\", \"findings\": [{\"path\": \"src/util.c\", \"line\": 0, \"severity\": \"bug\", "
        "\"title\": \"t\", \"body\": \"b\"}]}",                        /* line 0 */
        "{\"summary\": \"x\", \"findings\": [{\"path\": \"src/util.c\", \"line\": 1, \"severity\": \"bug\", "
        "\"title\": \"a\\nb\", \"body\": \"b\"}]}",                    /* newline in the title */
        "{\"summary\": \"\\u0041\", \"findings\": []}",                /* \u escapes are not produced */
        "{\"summary\": \"x\", \"findings\": [], \"extra\": 1}",        /* unknown key */
        "{\"summary\": \"tab\there\", \"findings\": []}",              /* raw control character */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        EXPECT(matches(g, v, bad[i], strlen(bad[i])) == 0, "bad document %zu accepted: %s", i, bad[i]);
    /* string lengths count characters, an escape as one */
    char doc[2000];
    for (int n = 398; n <= 401; n++) {
        int len = snprintf(doc, sizeof doc, "{\"summary\": \"");
        for (int i = 0; i < n; i++) len += snprintf(doc + len, sizeof doc - (size_t)len, i % 3 ? "\xc3\xa9" : "\\n");
        len += snprintf(doc + len, sizeof doc - (size_t)len, "\", \"findings\": []}");
        EXPECT(matches(g, v, doc, (size_t)len) == (n <= 400), "summary of %d characters", n);
    }
    json_decref(schema);
    grammar_free(g);
    grammar_vocab_free(v);
}

/* ---- every tokenizer kind -------------------------------------------------- */

typedef struct {
    int n;
    char **pieces;
    uint32_t *lens;
    uint8_t *kinds;
} vocab_copy;

/* Every token's bytes (engine_token_piece) and what the grammar must make of
 * it, from the tokenizer's own attributes: end-of-generation tokens end,
 * normal and byte tokens are text, every other special token is never allowed. */
static int vocab_copy_load(vocab_copy *c, engine *e, const char *path)
{
    gguf_file *f;
    tokenizer *t;
    if (gguf_open(&f, path, err, sizeof err)) return -1;
    if (tokenizer_load(&t, f, err, sizeof err)) {
        gguf_close(f);
        return -1;
    }
    c->n = engine_get_info(e)->n_vocab;
    c->pieces = calloc((size_t)c->n, sizeof *c->pieces);
    c->lens = calloc((size_t)c->n, sizeof *c->lens);
    c->kinds = calloc((size_t)c->n, 1);
    for (int i = 0; i < c->n; i++) {
        int len = engine_token_piece(e, i, NULL, 0), type = tokenizer_token_type(t, i);
        c->pieces[i] = malloc((size_t)len + 1);
        engine_token_piece(e, i, c->pieces[i], len);
        c->lens[i] = (uint32_t)len;
        c->kinds[i] = tokenizer_is_eog(t, i)                        ? GRAMMAR_TOKEN_END
                      : type == TOKEN_NORMAL || type == TOKEN_BYTE ? GRAMMAR_TOKEN_TEXT
                                                                   : GRAMMAR_TOKEN_NEVER;
    }
    tokenizer_free(t);
    gguf_close(f);
    return 0;
}

static void vocab_copy_free(vocab_copy *c)
{
    for (int i = 0; i < c->n; i++) free(c->pieces[i]);
    free(c->pieces);
    free(c->lens);
    free(c->kinds);
}

/* Random walks through the review schema on one vocabulary: the first steps'
 * masks equal brute force over the whole vocabulary, later ones are spot
 * checked, and the finished text is JSON that satisfies the schema. */
static void walk_vocab(const char *path, int walks, int brute_steps)
{
    engine *e;
    engine_params params = {.vocab_only = 1};
    FILE *probe = fopen(path, "rb");
    if (!probe) SKIP("%s not present", path);
    fclose(probe);
    REQUIRE(!engine_open(&e, path, &params, err, sizeof err), "%s: %s", path, err);
    const grammar_vocab *gv;
    REQUIRE(!engine_grammar_vocab(e, &gv, err, sizeof err), "%s: %s", path, err);
    grammar *g = schema_grammar(review_schema, 3);
    REQUIRE(g, "%s", err);
    json_t *schema = json_loads(review_schema, 0, NULL);
    vocab_copy c;
    REQUIRE(!vocab_copy_load(&c, e, path), "%s: %s", path, err);
    grammar_matcher *m;
    REQUIRE(!grammar_matcher_new(&m, g, gv, err, sizeof err), "%s", err);
    for (int w = 0; w < walks && !test_cur_failed; w++) {
        grammar_matcher_reset(m);
        size_t cap = 1 << 16, len = 0;
        char *text = malloc(cap);
        for (int step = 0; step < 20000; step++) {
            int n = grammar_matcher_compute(m, err, sizeof err);
            if (n < 0) {
                EXPECT(0, "%s walk %d: %s", path, w, err);
                break;
            }
            if (step < brute_steps && check_mask_brute(m, c.n, (const char *const *)c.pieces, c.lens, c.kinds, n))
                break;
            if (n == 0) break;
            int32_t pick = -1, seen = 0;
            for (int id = 0; id < c.n; id++) {
                if (!grammar_matcher_allowed(m, id)) continue;
                if (rnd((uint32_t)++seen) == 0) pick = id;
                if (rnd(256) == 0 && c.kinds[id] == GRAMMAR_TOKEN_TEXT && /* spot check */
                    grammar_matcher_can_take(m, c.pieces[id], c.lens[id], err, sizeof err) != 1)
                    EXPECT(0, "%s: token %d \"%.*s\" allowed but cannot continue", path, id, (int)c.lens[id],
                           c.pieces[id]);
                if (c.kinds[id] == GRAMMAR_TOKEN_NEVER) EXPECT(0, "%s: special token %d allowed", path, id);
            }
            REQUIRE(pick >= 0, "%s: %d allowed but none found", path, n);
            REQUIRE(!grammar_matcher_accept_token(m, pick, err, sizeof err), "%s: %s", path, err);
            if (c.kinds[pick] == GRAMMAR_TOKEN_END || len + c.lens[pick] + 1 > cap) break;
            memcpy(text + len, c.pieces[pick], c.lens[pick]);
            len += c.lens[pick];
        }
        text[len] = 0;
        if (!test_cur_failed) {
            EXPECT(grammar_matcher_accepting(m), "%s walk %d did not finish: %.200s", path, w, text);
            json_error_t je;
            json_t *doc = json_loadb(text, len, 0, &je);
            char why[200] = "";
            EXPECT(doc, "%s walk %d: jansson: %s in %.300s", path, w, je.text, text);
            EXPECT(!doc || validate(schema, doc, why, sizeof why), "%s walk %d: %s in %.300s", path, w, why, text);
            json_decref(doc);
        }
        free(text);
    }
    grammar_matcher_free(m);
    vocab_copy_free(&c);
    json_decref(schema);
    grammar_free(g);
    engine_close(e);
}

static const char *const vocab_files[] = {
    "vocab/ggml-vocab-llama-spm.gguf",     "vocab/ggml-vocab-phi-3.gguf",          "vocab/ggml-vocab-gpt-2.gguf",
    "vocab/ggml-vocab-deepseek-coder.gguf", "vocab/ggml-vocab-deepseek-llm.gguf",  "vocab/ggml-vocab-falcon.gguf",
    "vocab/ggml-vocab-mpt.gguf",           "vocab/ggml-vocab-refact.gguf",         "vocab/ggml-vocab-starcoder.gguf",
    "vocab/gpt2-vocab-pre-llama-bpe.gguf", "vocab/gpt2-vocab-pre-qwen2.gguf",      "vocab/gpt2-vocab-pre-smollm.gguf",
    "models/stories260K.gguf",             "models/tiny-qwen2-Q8_0.gguf",          "models/tiny-gemma3-Q4_K_M.gguf",
};

static const char *walk_path;
static void run_walk_vocab(void) { walk_vocab(walk_path, 3, 2); }

static void test_every_vocab(void)
{
    for (size_t i = 0; i < sizeof vocab_files / sizeof vocab_files[0]; i++) {
        char name[128];
        walk_path = test_data_path(vocab_files[i]);
        snprintf(name, sizeof name, "grammar_walk %s", strrchr(vocab_files[i], '/') + 1);
        TEST_RUN_AS(name, run_walk_vocab);
    }
}

static const char *qwen_path(void)
{
    static char buf[1024];
    const char *home = getenv("HOME");
    snprintf(buf, sizeof buf, "%s/.cache/prbot/Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf", home ? home : "");
    return buf;
}

static void test_walk_smollm2(void) { walk_vocab(test_smollm2_path(), 2, 1); }
static void test_walk_qwen(void) { walk_vocab(qwen_path(), 2, 1); }

/* Forcing the output through one-byte tokens that split its characters: the
 * mask allows exactly the next byte's tokens mid-character. */
static void utf8_split_on(const char *path)
{
    engine *e;
    engine_params params = {.vocab_only = 1};
    if (engine_open(&e, path, &params, err, sizeof err)) SKIP("%s: %s", path, err);
    const grammar_vocab *gv;
    REQUIRE(!engine_grammar_vocab(e, &gv, err, sizeof err), "%s", err);
    int n = engine_get_info(e)->n_vocab;
    int32_t byte_token[256];
    for (int b = 0; b < 256; b++) byte_token[b] = -1;
    for (int id = 0; id < n; id++) {
        char piece[8];
        if (engine_token_piece(e, id, piece, sizeof piece) == 1 && byte_token[(unsigned char)piece[0]] < 0)
            byte_token[(unsigned char)piece[0]] = id;
    }
    static const char target[] = "h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x8e\x89!";
    /* a space may lead: SentencePiece puts one before the text it tokenizes */
    grammar *g = compile("root ::= \" \"? \"h\xc3\xa9llo \" [^a-z]{2} \" \xf0\x9f\x8e\x89!\"");
    REQUIRE(g, "%s", err);
    grammar_matcher *m;
    REQUIRE(!grammar_matcher_new(&m, g, gv, err, sizeof err), "%s", err);
    for (size_t i = 0; i < sizeof target - 1; i++) {
        unsigned char b = (unsigned char)target[i];
        REQUIRE(byte_token[b] >= 0, "%s has no token for byte 0x%02X", path, b);
        REQUIRE(grammar_matcher_compute(m, err, sizeof err) > 0, "%s", err);
        EXPECT(grammar_matcher_allowed(m, byte_token[b]), "%s: byte 0x%02X at %zu not allowed", path, b, i);
        if ((b & 0xC0) == 0x80) { /* mid-character: no ASCII, no new lead byte */
            EXPECT(!grammar_matcher_allowed(m, byte_token['a']) && !grammar_matcher_allowed(m, byte_token['!']) &&
                       !grammar_matcher_allowed(m, byte_token[0xE4]),
                   "%s: a new character allowed inside one at %zu", path, i);
        }
        REQUIRE(!grammar_matcher_accept_token(m, byte_token[b], err, sizeof err), "%s", err);
    }
    EXPECT(grammar_matcher_done(m), "%s: not complete after the whole text", path);
    /* and the same text through the tokenizer's own pieces */
    grammar_matcher_reset(m);
    int32_t ids[64];
    int nt = engine_tokenize(e, target, sizeof target - 1, 0, 0, ids, 64);
    REQUIRE(nt > 0 && nt <= 64, "%d tokens", nt);
    for (int i = 0; i < nt; i++) {
        REQUIRE(grammar_matcher_compute(m, err, sizeof err) > 0, "%s", err);
        EXPECT(grammar_matcher_allowed(m, ids[i]), "%s: token %d of the tokenized text not allowed", path, ids[i]);
        REQUIRE(!grammar_matcher_accept_token(m, ids[i], err, sizeof err), "%s", err);
    }
    EXPECT(grammar_matcher_done(m), "%s: tokenized text not complete", path);
    grammar_matcher_free(m);
    grammar_free(g);
    engine_close(e);
}

static void test_utf8_split_spm(void) { utf8_split_on(test_data_path("vocab/ggml-vocab-llama-spm.gguf")); }
static void test_utf8_split_bpe(void) { utf8_split_on(test_data_path("vocab/ggml-vocab-gpt-2.gguf")); }

/* ---- generation ------------------------------------------------------------ */

static const char small_schema[] =
    "{\"type\": \"object\", \"properties\": {"
    "  \"summary\":  {\"type\": \"string\", \"maxLength\": 30},"
    "  \"findings\": {\"type\": \"array\", \"maxItems\": 2, \"items\": {"
    "    \"type\": \"object\", \"properties\": {"
    "      \"path\":       {\"enum\": [\"src/util.c\", \"lib/\xc3\xa9t\xc3\xa9.py\"]},"
    "      \"line\":       {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 5000},"
    "      \"severity\":   {\"enum\": [\"bug\", \"risk\", \"nit\"]},"
    "      \"title\":      {\"type\": \"string\", \"maxLength\": 20, \"x-single-line\": true},"
    "      \"ok\":         {\"type\": \"boolean\"},"
    "      \"suggestion\": {\"type\": \"string\", \"maxLength\": 20}},"
    "    \"required\": [\"path\", \"line\", \"severity\", \"title\"]}}},"
    "  \"required\": [\"summary\", \"findings\"]}";

typedef struct {
    char text[8192];
    size_t len;
} collected;

static int collect(int32_t id, const char *text, void *user)
{
    collected *c = user;
    size_t n = strlen(text);
    if (c->len + n < sizeof c->text) memcpy(c->text + c->len, text, n), c->len += n;
    c->text[c->len] = 0;
    return 0;
}

/* Many high-temperature generations from a random-weight model: each one
 * completes and satisfies the schema. */
static void generate_json(const char *path, int runs, float temperature)
{
    engine *e;
    engine_params params = {.n_threads = 1};
    if (engine_open(&e, path, &params, err, sizeof err)) SKIP("%s: %s", path, err);
    engine_session *ses;
    REQUIRE(!engine_session_new(&ses, e, 0, err, sizeof err), "%s", err);
    grammar *g = schema_grammar(small_schema, 1);
    REQUIRE(g, "%s", err);
    json_t *schema = json_loads(small_schema, 0, NULL);
    int32_t prompt[64];
    int n_prompt = engine_tokenize(e, "Review:", 7, engine_get_info(e)->add_bos, 0, prompt, 64);
    REQUIRE(n_prompt > 0 && n_prompt <= 64, "prompt of %d tokens", n_prompt);
    int n_done = 0;
    for (int r = 0; r < runs && !test_cur_failed; r++) {
        engine_sampling s;
        engine_sampling_defaults(&s);
        s.temperature = temperature;
        s.top_k = r % 2 ? 0 : 40;
        s.top_p = r % 3 ? 1.0f : 0.9f;
        s.min_p = 0;
        s.seed = (uint64_t)r + 1;
        s.max_tokens = engine_session_n_ctx(ses) - n_prompt;
        s.grammar = g;
        collected c = {.len = 0};
        engine_stats st;
        REQUIRE(!engine_generate(ses, prompt, n_prompt, &s, collect, &c, NULL, 0, &st, err, sizeof err), "%s run %d: %s",
                path, r, err);
        int complete = !strcmp(st.stop_reason, "grammar") || !strcmp(st.stop_reason, "eos");
        EXPECT(complete, "%s run %d stopped by %s: %.200s", path, r, st.stop_reason, c.text);
        json_error_t je;
        json_t *doc = json_loadb(c.text, c.len, 0, &je);
        char why[200] = "";
        EXPECT(doc, "%s run %d: jansson: %s in %s", path, r, je.text, c.text);
        EXPECT(!doc || validate(schema, doc, why, sizeof why), "%s run %d: %s in %s", path, r, why, c.text);
        n_done += doc != NULL;
        json_decref(doc);
    }
    EXPECT(n_done == runs || test_cur_failed, "%d of %d runs parsed", n_done, runs);
    json_decref(schema);
    grammar_free(g);
    engine_session_free(ses);
    engine_close(e);
}

static void test_generate_stories(void) { generate_json(test_data_path("models/stories260K.gguf"), 1000, 1.5f); }
static void test_generate_tiny_qwen2(void) { generate_json(test_data_path("models/tiny-qwen2-Q8_0.gguf"), 40, 1.5f); }
static void test_generate_tiny_llama3(void)
{
    generate_json(test_data_path("models/tiny-llama3-Q4_K_M.gguf"), 20, 1.0f);
}

/* Greedy generation also obeys the grammar, and a dead end is an error. */
static void test_generate_greedy_and_dead_end(void)
{
    engine *e;
    engine_params params = {.n_threads = 1};
    if (engine_open(&e, test_data_path("models/stories260K.gguf"), &params, err, sizeof err)) SKIP("%s", err);
    engine_session *ses;
    REQUIRE(!engine_session_new(&ses, e, 0, err, sizeof err), "%s", err);
    int32_t prompt[64];
    int n_prompt = engine_tokenize(e, "Once upon a time", 16, 1, 0, prompt, 64);
    REQUIRE(n_prompt > 0 && n_prompt <= 64, "prompt of %d tokens", n_prompt);
    grammar *g = compile("root ::= \" \" [A-Z] [a-z]{2,8} (\" \" [a-z]{1,8}){3} \".\"");
    REQUIRE(g, "%s", err);
    engine_sampling s;
    engine_sampling_defaults(&s);
    s.temperature = 0;
    s.max_tokens = 100;
    s.grammar = g;
    collected c = {.len = 0};
    engine_stats st;
    REQUIRE(!engine_generate(ses, prompt, n_prompt, &s, collect, &c, NULL, 0, &st, err, sizeof err), "%s", err);
    grammar_vocab *v = byte_vocab();
    EXPECT(!strcmp(st.stop_reason, "grammar") && matches(g, v, c.text, c.len) == 1, "greedy: %s \"%s\"",
           st.stop_reason, c.text);
    grammar_vocab_free(v);
    grammar_free(g);
    /* the grammar's only sentences nest too deep: an immediate, clear error */
    char text[20000];
    char *p = text + sprintf(text, "root ::= c0\n");
    for (int i = 0; i < GRAMMAR_MAX_DEPTH + 10; i++) p += sprintf(p, "c%d ::= c%d \"!\"\n", i, i + 1);
    sprintf(p, "c%d ::= \"a\"\n", GRAMMAR_MAX_DEPTH + 10);
    g = compile(text);
    REQUIRE(g, "%s", err);
    s.grammar = g;
    c.len = 0;
    EXPECT(engine_generate(ses, prompt, n_prompt, &s, collect, &c, NULL, 0, &st, err, sizeof err) == -1 &&
               strstr(err, "dead end"),
           "dead end not reported: %s", err);
    EXPECT(st.generated_tokens == 0, "%d tokens generated at a dead end", st.generated_tokens);
    grammar_free(g);
    engine_session_free(ses);
    engine_close(e);
}

/* The real models write valid review JSON, greedy and sampled. */
static void generate_real(const char *path, int runs)
{
#ifdef __SANITIZE_ADDRESS__
    SKIP("a real model is too slow under AddressSanitizer");
#endif
    engine *e;
    engine_params params = {0};
    FILE *f = fopen(path, "rb");
    if (!f) SKIP("%s not present", path);
    fclose(f);
    if (engine_open(&e, path, &params, err, sizeof err)) SKIP("%s: %s", path, err);
    engine_session *ses;
    REQUIRE(!engine_session_new(&ses, e, 0, err, sizeof err), "%s", err);
    grammar *g = schema_grammar(review_schema, 24);
    REQUIRE(g, "%s", err);
    json_t *schema = json_loads(review_schema, 0, NULL);
    engine_chat_msg msgs[] = {
        {"system", "You review code. Answer with JSON only."},
        {"user", "Review this change to src/util.c:\n@@ -10,3 +10,3 @@\n-for (i = 0; i < n; i++)\n+for (i = 0; i <= "
                 "n; i++)\n   sum += a[i];\nReply as {\"summary\": ..., \"findings\": [{\"path\", \"line\", "
                 "\"severity\", \"title\", \"body\"}]}."},
    };
    char *prompt_text = NULL;
    REQUIRE(!engine_chat_format(e, msgs, 2, 1, &prompt_text, err, sizeof err), "%s", err);
    int32_t prompt[1024];
    int n_prompt = engine_tokenize(e, prompt_text, strlen(prompt_text), engine_get_info(e)->add_bos, 1, prompt, 1024);
    REQUIRE(n_prompt > 0 && n_prompt <= 1024, "prompt of %d tokens", n_prompt);
    free(prompt_text);
    int n_checked = 0;
    for (int r = 0; r < runs; r++) {
        engine_sampling s;
        engine_sampling_defaults(&s);
        s.temperature = r ? 0.8f : 0.0f;
        s.seed = 7;
        s.max_tokens = 800;
        s.grammar = g;
        collected c = {.len = 0};
        engine_stats st;
        REQUIRE(!engine_generate(ses, prompt, n_prompt, &s, collect, &c, NULL, 0, &st, err, sizeof err), "%s", err);
        if (!strcmp(st.stop_reason, "max_tokens")) continue; /* a long answer is the model's business */
        n_checked++;
        json_error_t je;
        json_t *doc = json_loadb(c.text, c.len, 0, &je);
        char why[200] = "";
        EXPECT(doc, "%s: jansson: %s in %s", path, je.text, c.text);
        EXPECT(!doc || validate(schema, doc, why, sizeof why), "%s: %s in %s", path, why, c.text);
        json_decref(doc);
        fprintf(stderr, "%s (%s, %d tokens, grammar %.3f ms/token): %s\n", engine_get_info(e)->name,
                r ? "temp 0.8" : "greedy", st.generated_tokens,
                st.generated_tokens ? st.grammar_s * 1e3 / st.generated_tokens : 0.0, c.text);
    }
    json_decref(schema);
    grammar_free(g);
    engine_session_free(ses);
    engine_close(e);
    if (!n_checked) SKIP("%s: every run reached max_tokens", path);
}

static void test_generate_smollm2(void) { generate_real(test_smollm2_path(), 1); }
static void test_generate_qwen(void) { generate_real(qwen_path(), 2); }

int main(void)
{
    TEST_RUN(test_parse_errors);
    TEST_RUN(test_accept_reject);
    TEST_RUN(test_tail_recursion);
    TEST_RUN(test_nesting_limit);
    TEST_RUN(test_random_grammars);
    TEST_RUN(test_mask_small_vocab);
    TEST_RUN(test_dead_end);
    TEST_RUN(test_ambiguity_limit);
    TEST_RUN(test_schema_errors);
    TEST_RUN(test_schema_integers);
    TEST_RUN(test_schema_documents);
    test_every_vocab();
    TEST_RUN(test_walk_smollm2);
    TEST_RUN(test_walk_qwen);
    TEST_RUN(test_utf8_split_spm);
    TEST_RUN(test_utf8_split_bpe);
    TEST_RUN(test_generate_greedy_and_dead_end);
    TEST_RUN(test_generate_stories);
    TEST_RUN(test_generate_tiny_qwen2);
    TEST_RUN(test_generate_tiny_llama3);
    TEST_RUN(test_generate_smollm2);
    TEST_RUN(test_generate_qwen);
    return test_exit_code();
}
