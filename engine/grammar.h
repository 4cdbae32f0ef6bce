/*
 * grammar.h - constrained decoding: a grammar that decides, at every step,
 * which tokens may come next, so the output is valid by construction.
 *
 * The language is GBNF-like (one rule per `name ::= ...`, the start rule is
 * `root`):
 *
 *   root    ::= "{" ws "\"n\":" ws num ws "}"   # literals, with \" \\ \n \t \r \xHH \uHHHH \UHHHHHHHH
 *   num     ::= "-"? ([0-9] | [1-9] [0-9]{1,8}) # classes [a-z], negated [^"\\], any char .
 *   ws      ::= [ \t\n]{0,8}                     # x* x+ x? x{m} x{m,} x{m,n} x{,n}
 *   list    ::= item ("," item)* | ""            # alternation, grouping, rule references
 *
 * Rules may be recursive (a call in tail position does not grow the stack);
 * left recursion is an error. Whitespace and newlines between items do not
 * matter; a rule ends where the next `name ::=` begins. Classes and `.` are
 * over Unicode codepoints, so every output is valid UTF-8.
 *
 * How it works. The grammar compiles to a small byte-level program (consume
 * a byte from a set, split, jump, call a rule, return) in which every
 * codepoint class has become UTF-8 byte sequences and every bounded
 * repetition is unrolled. A parse in progress is a set of threads (program
 * counter + call stack, stacks shared and interned), and these sets are
 * themselves interned as the states of a lazily built DFA whose transitions,
 * over byte equivalence classes, are computed once and cached. The
 * vocabulary is a trie of every token's bytes in preorder; one step walks it
 * with the DFA, a table lookup per trie node, skipping every subtree whose
 * prefix is already dead. A token is allowed when its whole byte string
 * keeps the parse alive, which is exact at the byte level: a UTF-8 character
 * may span tokens, and SentencePiece byte tokens (<0xE4>) and byte-level BPE
 * pieces are just byte strings. End-of-generation tokens are allowed only
 * where the grammar accepts; control and user-defined tokens never.
 *
 * Compile-time analysis removes every path that can never finish (so a
 * token is never allowed into a dead corner of the grammar) and rejects
 * grammars that accept nothing. The only way left to reach a dead end is a
 * vocabulary that cannot spell some byte, or the limits below; then
 * grammar_matcher_mask fails with an error that says where.
 *
 * Bounds, all errors with one line, never hangs: the grammar text (1 MiB),
 * nesting of parentheses (64), the program after unrolling (1M
 * instructions), left recursion (found before running), rule nesting at run
 * time (256 calls deep: deeper paths are dropped), threads in one state
 * (4096) and closure work per transition, and the DFA cache (flushed past
 * 64 MiB between steps, an error if one step alone needs 512 MiB).
 *
 * Use from the review code (engine.h's engine_sampling.grammar):
 *
 *   grammar *g;
 *   if (grammar_parse(&g, text, strlen(text), err, sizeof err)) ...   // GBNF text
 *   sampling.grammar = g;
 *   engine_generate(e, ids, n, &sampling, ...);   // stops with stop_reason "grammar" or "eos"
 *   grammar_free(g);                               // after the generation
 *
 * The grammar text for structured output comes from a JSON-Schema subset
 * (bot/json_schema.h: json_schema_to_grammar), for instance a review's
 * findings with the paths limited to the changed files:
 *
 *   {"type": "object", "properties": {
 *      "summary":  {"type": "string", "maxLength": 400},
 *      "findings": {"type": "array", "maxItems": 8, "items": {
 *        "type": "object", "properties": {
 *          "path":       {"enum": ["src/util.c", "src/main.c"]},
 *          "line":       {"type": "integer", "minimum": 1, "maximum": 100000},
 *          "severity":   {"enum": ["bug", "risk", "nit"]},
 *          "title":      {"type": "string", "maxLength": 100, "x-single-line": true},
 *          "body":       {"type": "string", "maxLength": 600},
 *          "suggestion": {"type": "string", "maxLength": 600}},
 *        "required": ["path", "line", "severity", "title", "body"]}}},
 *    "required": ["summary", "findings"]}
 *
 * Keys come out in the order of "properties"; optional ones may be left out.
 *
 * Extending: a new syntax element is a new AST node (parse_primary/
 * parse_postfix) compiled to the existing instructions in emit(); the
 * runtime never needs to change.
 */
#ifndef PRBOT_GRAMMAR_H
#define PRBOT_GRAMMAR_H

#include <stddef.h>
#include <stdint.h>

typedef struct grammar grammar;                 /* compiled, immutable: share it freely */
typedef struct grammar_vocab grammar_vocab;     /* the vocabulary's byte strings as a trie */
typedef struct grammar_matcher grammar_matcher; /* one output being constrained */

/* What a token may be under a grammar. */
enum {
    GRAMMAR_TOKEN_NEVER = 0, /* control, user-defined, unused or empty: never allowed */
    GRAMMAR_TOKEN_TEXT = 1,  /* its bytes must continue the grammar */
    GRAMMAR_TOKEN_END = 2,   /* ends generation: allowed only where the grammar accepts */
};

#define GRAMMAR_MAX_TEXT (1u << 20)
#define GRAMMAR_MAX_DEPTH 256

/* Compiles GBNF text whose start rule is `root`. */
int grammar_parse(grammar **out, const char *text, size_t len, char *err, size_t errlen);
void grammar_free(grammar *g);
/* Instructions of the compiled program (a measure of its size). */
int grammar_program_size(const grammar *g);

/* Builds the trie over n_vocab tokens: token i is pieces[i][0..lens[i]) of
 * kind kinds[i]. The strings are copied. */
int grammar_vocab_new(grammar_vocab **out, int n_vocab, const char *const *pieces, const uint32_t *lens,
                      const uint8_t *kinds, char *err, size_t errlen);
void grammar_vocab_free(grammar_vocab *v);
int grammar_vocab_n_nodes(const grammar_vocab *v); /* trie nodes (for measurements) */

/* g and v must outlive the matcher. */
int grammar_matcher_new(grammar_matcher **out, const grammar *g, const grammar_vocab *v, char *err, size_t errlen);
void grammar_matcher_free(grammar_matcher *m);
/* Back to the start of the output (keeps the cached automaton). */
void grammar_matcher_reset(grammar_matcher *m);

/* Computes the tokens allowed next. Returns their count (> 0), 0 when the
 * output is complete and nothing may follow (stop), or -1 at a dead end
 * (no token can continue an unfinished output) or a limit, with err set.
 * grammar_matcher_allowed then answers per token until the next call. */
int grammar_matcher_compute(grammar_matcher *m, char *err, size_t errlen);
int grammar_matcher_allowed(const grammar_matcher *m, int32_t id);
/* grammar_matcher_compute, then logits[i] = -INFINITY for every token not allowed. */
int grammar_matcher_mask(grammar_matcher *m, float *logits, char *err, size_t errlen);

/* Advances by a token's bytes. -1 (state unchanged, err set) if the grammar
 * forbids it; an END token is accepted only where the grammar accepts. */
int grammar_matcher_accept_token(grammar_matcher *m, int32_t id, char *err, size_t errlen);
/* Advances by raw bytes: 0, or -1 if they cannot continue the output
 * (state unchanged, err set). */
int grammar_matcher_accept_bytes(grammar_matcher *m, const char *bytes, size_t len, char *err, size_t errlen);
/* Whether the bytes could continue the output here, without moving: 1 yes,
 * 0 no, -1 on an error (a limit). */
int grammar_matcher_can_take(grammar_matcher *m, const char *bytes, size_t len, char *err, size_t errlen);
/* The output so far is a complete sentence of the grammar. */
int grammar_matcher_accepting(const grammar_matcher *m);
/* Complete, and no byte may follow. */
int grammar_matcher_done(const grammar_matcher *m);

#endif
