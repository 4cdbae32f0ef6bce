/*
 * findings.h - the review document: what the model found, in a form prbot
 * can check, anchor on diff lines, post and store.
 *
 * The review prompt asks the model for one small JSON object (under a
 * grammar when the engine has one, so it is valid by construction):
 *
 *   {"summary": "Two sentences about the change.",
 *    "findings": [{"path": "src/util.c", "line": 42, "end_line": 44, "severity": "bug",
 *                  "title": "Off-by-one in loop bound", "body": "Short explanation.",
 *                  "suggestion": "for (i = 0; i < n; i++)"}]}
 *
 * findings_parse reads it from whatever the model wrote: the first JSON
 * object in the text, or, when the text was cut short (token or time
 * budget) or is damaged, the longest prefix that can be closed into one, so
 * every complete finding survives; text that holds no object at all gives
 * an empty, "unparsed" list and never an error. Every field is then
 * checked: the path must be one of the files shown to the model (a unique
 * suffix match is accepted: "util.c" for "src/util.c"), the line a positive
 * number, the severity one of bug/risk/nit (a few synonyms are mapped), the
 * title non-empty; everything is cleaned to one paragraph of plain text
 * (prbot writes every heading and list itself) and capped in length, and
 * sentences that repeat the prompt's own instructions are removed
 * (findings_echo). Invalid findings are dropped and counted.
 *
 * The document (review_doc) adds the run's facts: repository, PR, SHAs,
 * model, files reviewed/not shown/skipped, token counts. It is written to
 * and read from review.json, whose format (version 1) docs/DESIGN.md
 * describes; review_doc_load is the strict reader `prbot post` uses on an
 * artifact it does not trust.
 */
#ifndef PRBOT_FINDINGS_H
#define PRBOT_FINDINGS_H

#include <stddef.h>

#include "diff.h"
#include "linemap.h"

enum { SEVERITY_BUG = 0, SEVERITY_RISK = 1, SEVERITY_NIT = 2 };

/* Caps on what the model may put in one field (bytes, cut at a word or
 * character boundary) and on the number of findings kept. */
#define FINDING_MAX_SUMMARY 600
#define FINDING_MAX_TITLE 120
#define FINDING_MAX_BODY 1200
#define FINDING_MAX_SUGGESTION 2000
#define FINDINGS_MAX 20

typedef struct {
    char *path;
    int line, end_line;             /* RIGHT-side lines after anchoring; line 0 = not anchored, end_line 0 = one line */
    int model_line, model_end_line; /* as the model cited them */
    int severity;                   /* SEVERITY_* */
    char *title, *body;
    char *suggestion;               /* replacement for lines line..end_line, or NULL */
    int inline_comment;             /* posted (or to post) as an inline comment */
    const char *why_not_inline;     /* static text when inline_comment is 0, e.g. "line not in the diff" */
    char fingerprint[17];           /* see findings_fingerprint; "" until computed */
    char *url;                      /* html_url of its inline comment once posted, else NULL */
    int duplicate;                  /* posted by an earlier run: not posted again */
} finding;

typedef enum { FINDINGS_PARSED = 0, FINDINGS_REPAIRED = 1, FINDINGS_UNPARSED = 2 } findings_status;

typedef struct {
    char *summary;      /* cleaned; NULL when the model gave none */
    finding *items;
    size_t n, cap;
    findings_status status;
    int dropped;        /* findings the model wrote that failed validation */
} findings_list;

/* Sentences that copy the prompt template's own text. Built from the
 * template with its {{placeholders}} removed. */
typedef struct findings_echo findings_echo;
findings_echo *findings_echo_new(const char *template_text);
void findings_echo_free(findings_echo *e);
/* 1 when text shares a run of 5 words with the template (or is a 4+ word
 * phrase of it). */
int findings_echo_match(const findings_echo *e, const char *text);
/* text without its echoing sentences (malloc'ed; NULL on no memory). */
char *findings_echo_strip(const findings_echo *e, const char *text);

/* Parses the model's text (see above). paths: the files shown to the model.
 * echo may be NULL. Returns 0, or -1 only when out of memory. */
int findings_parse(const char *text, size_t len, const char *const *paths, size_t n_paths, const findings_echo *echo,
                   findings_list *out, char *err, size_t errlen);
void findings_list_free(findings_list *l);
/* Appends a copy of f (strings duplicated). Returns 0 or -1. */
int findings_add(findings_list *l, const finding *f);
void finding_free(finding *f);

/* The JSON Schema of the answer the review prompt asks for, to constrain
 * generation to it (json_schema_to_grammar, or a server's response_format):
 * a summary and at most max_findings findings, each on one of the files
 * shown (paths[i]) at a line from first_line[i] to last_line[i] (the range
 * of its shown hunks, widened by a few lines for anchoring), with texts of
 * bounded length. extensions: also prbot's own keywords ("x-single-line").
 * A jansson object (the caller decrefs it) or NULL. */
struct json_t;
struct json_t *findings_schema(const char *const *paths, const int *first_line, const int *last_line, size_t n,
                               int max_findings, int extensions);

/* One paragraph of plain text: valid UTF-8, no control characters, line
 * breaks and runs of blanks as one space, no leading markdown markers
 * (#, >, -, *, +, "1."), at most max_bytes (cut at a word when possible,
 * then "…"). malloc'ed. */
char *findings_clean_text(const char *s, size_t len, size_t max_bytes);

const char *findings_severity_name(int severity);
/* SEVERITY_* for a name or synonym ("error" -> bug, "warning" -> risk,
 * "style" -> nit ...); -1 when unknown. */
int findings_severity_parse(const char *s);

/* Places each finding on the line map of its file: a cited line that a
 * RIGHT-side comment may target stays; one just outside (within
 * max_distance lines of the same hunk) moves to the nearest such line (a
 * moved finding loses its suggestion, which was written for other lines);
 * anything else gets line 0 and goes to the summary only. end_line is kept
 * when it is in the same hunk after line, else clamped to that hunk or
 * dropped. maps[i] belongs to paths[i]; accept (may be NULL) adds a
 * condition on target lines per file: accept(user_of(i), line). */
typedef int (*findings_accept_fn)(void *user, size_t file, int line);
void findings_anchor(findings_list *l, const char *const *paths, const linemap *const *maps, size_t n_files,
                     int max_distance, findings_accept_fn accept, void *user);

/* Sorts by severity (bug, risk, nit), then path and line; stable. */
void findings_rank(findings_list *l);

/* The first 16 hex digits of SHA-256(path "\n" normalised title "\n" the
 * line's text with surrounding blanks removed). The normalised title is
 * its letters and digits, lower-cased, words joined by one space, so
 * "Off-by-one in loop!" and "off by one in loop" match. */
void findings_fingerprint(const char *path, const char *title, const char *line_text, size_t line_len, char out[17]);

/* ---- the review document (review.json) ---------------------------------- */

typedef struct {
    char *path, *reason;
} review_doc_file;

typedef struct {
    int version; /* 1 */
    char repo[256];
    long pr;
    char base_sha[41], head_sha[41];
    char since_sha[41];         /* incremental review: the head reviewed before ("" = the whole PR) */
    char *model, *prompt;
    findings_list f;            /* f.summary is the document's summary */
    char **reviewed;
    size_t n_reviewed;
    review_doc_file *not_shown, *skipped;
    size_t n_not_shown, n_skipped;
    int prompt_tokens, generated_tokens;
    double seconds;
    char *stop_reason;          /* may be NULL */
} review_doc;

void review_doc_free(review_doc *d);
/* Fills the file lists from a diff: shown files are "reviewed", files with
 * not_shown set are "not_shown", other skipped ones "skipped". */
int review_doc_set_files(review_doc *d, const diff_result *diff);
/* review.json text (malloc'ed, pretty-printed) or NULL. */
char *review_doc_to_json(const review_doc *d);

/* Limits review_doc_load enforces on an untrusted document. */
#define REVIEW_DOC_MAX_BYTES (1u << 20)
#define REVIEW_DOC_MAX_FILES 3000

/* Parses review.json strictly: the version, every field's type, sizes
 * (findings at most FINDINGS_MAX, strings within the FINDING_MAX_* caps
 * plus slack, at most REVIEW_DOC_MAX_FILES files), SHAs of 40 hex digits.
 * Text fields are cleaned as findings_parse cleans the model's. Returns 0,
 * or -1 with err naming the first problem. */
int review_doc_parse(const char *text, size_t len, review_doc *d, char *err, size_t errlen);

#endif
