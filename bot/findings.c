/*
 * findings.c - reading, checking and storing the model's findings.
 *
 * Parsing never trusts the model to have finished: under a token or time
 * budget the JSON can stop anywhere. json_loadb is tried on the text from
 * its first '{' (trailing text ignored); when that fails, a scan records
 * the places where a value had just closed (after '}', ']' or a string)
 * together with the brackets still open there, and the text cut at each
 * such place, from the last one back, is closed with those brackets and
 * tried again. The first one that parses is the longest valid prefix: all
 * findings completed before the cut are kept, a half-written one is
 * dropped by validation. At most MAX_REPAIR_TRIES cuts are tried, so a
 * pathological text costs a bounded amount of work.
 *
 * The echo check hashes every run of 5 words of the prompt template into a
 * sorted array; a sentence of the model's text that contains one of them
 * is taken as copied from the instructions and removed. Words are
 * lower-cased letters and digits, so punctuation and case do not hide an
 * echo.
 */
#include "findings.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "comment.h"
#include "../engine/engine.h"
#include "errors.h"
#include "github.h"
#include "sha256.h"
#include "textbuf.h"

#define MAX_REPAIR_TRIES 64
#define MAX_NESTING 64
#define ECHO_NGRAM 5

static const char *const severity_names[] = {"bug", "risk", "nit"};

const char *findings_severity_name(int severity)
{
    return severity >= 0 && severity <= SEVERITY_NIT ? severity_names[severity] : "risk";
}

int findings_severity_parse(const char *s)
{
    static const struct {
        const char *name;
        int severity;
    } names[] = {
        {"bug", SEVERITY_BUG},        {"error", SEVERITY_BUG},   {"critical", SEVERITY_BUG}, {"high", SEVERITY_BUG},
        {"major", SEVERITY_BUG},      {"risk", SEVERITY_RISK},   {"warning", SEVERITY_RISK}, {"medium", SEVERITY_RISK},
        {"security", SEVERITY_RISK},  {"nit", SEVERITY_NIT},     {"minor", SEVERITY_NIT},    {"low", SEVERITY_NIT},
        {"style", SEVERITY_NIT},      {"info", SEVERITY_NIT},    {"suggestion", SEVERITY_NIT},
    };
    if (!s) return -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(s, names[i].name)) return names[i].severity;
    return -1;
}

/* ---- text cleaning ------------------------------------------------------ */

static int is_blank(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* Valid UTF-8 with control characters dropped; blanks (and line breaks when
 * keep_lines is 0) become single spaces. */
static void append_clean(textbuf *b, const char *s, size_t len, int keep_lines)
{
    int pending_space = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        if (keep_lines) {
            if (c == '\r') {
                i++;
                continue;
            }
        } else if (is_blank(c)) {
            pending_space = 1;
            i++;
            continue;
        }
        size_t n = engine_utf8_len(s + i, len - i);
        if (n == 0) {
            textbuf_puts(b, "\xEF\xBF\xBD");
            i++;
            continue;
        }
        if (n == 1 && ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7F)) {
            i++;
            continue;
        }
        if (pending_space && b->len) textbuf_add(b, " ", 1);
        pending_space = 0;
        textbuf_add(b, s + i, n);
        i += n;
    }
}

/* Length of a leading markdown marker at s ("# ", "> ", "- ", "1. " ...), or 0. */
static size_t leading_marker(const char *s)
{
    size_t i = 0;
    if (s[0] == '#') {
        while (s[i] == '#') i++;
    } else if (s[0] == '>' || ((s[0] == '-' || s[0] == '*' || s[0] == '+') && s[1] == ' ')) {
        i = 1;
    } else if (!strncmp(s, "\xE2\x80\xA2", 3)) { /* U+2022 BULLET */
        i = 3;
    } else if (s[0] >= '0' && s[0] <= '9') {
        while (s[i] >= '0' && s[i] <= '9') i++;
        if ((s[i] != '.' && s[i] != ')') || s[i + 1] != ' ') return 0;
        i++;
    } else {
        return 0;
    }
    while (s[i] == ' ') i++;
    return i;
}

/* Cuts s (NUL-terminated, len bytes) to at most max bytes plus "…", at a word if one ends near the cut. */
static void cut_text(char *s, size_t max)
{
    size_t len = strlen(s);
    if (len <= max) return;
    size_t ell = 3, cut = max > ell ? max - ell : 0;
    cut = comment_utf8_prefix(s, len, cut);
    size_t word = cut;
    while (word > 0 && s[word - 1] != ' ') word--;
    if (word > 0 && cut - word < 40) cut = word - 1;
    while (cut > 0 && s[cut - 1] == ' ') cut--;
    memcpy(s + cut, "\xE2\x80\xA6", 4); /* U+2026 and the NUL */
}

char *findings_clean_text(const char *s, size_t len, size_t max_bytes)
{
    textbuf b = {0};
    append_clean(&b, s ? s : "", s ? len : 0, 0);
    textbuf_add(&b, "", 0);
    if (b.failed) {
        textbuf_free(&b);
        return NULL;
    }
    char *text = b.data;
    size_t skip = 0, m;
    while ((m = leading_marker(text + skip)) > 0) skip += m;
    if (skip) memmove(text, text + skip, strlen(text + skip) + 1);
    size_t n = strlen(text);
    while (n && text[n - 1] == ' ') text[--n] = 0;
    if (max_bytes) cut_text(text, max_bytes);
    return text;
}

/* Code for a suggestion block: valid UTF-8, lines kept, no trailing newline;
 * NULL when empty or when it would break out of the block (a fence line). */
static char *clean_code(const char *s, size_t len)
{
    textbuf b = {0};
    append_clean(&b, s, len, 1);
    textbuf_add(&b, "", 0);
    if (b.failed) {
        textbuf_free(&b);
        return NULL;
    }
    char *code = b.data;
    size_t n = strlen(code);
    while (n && (code[n - 1] == '\n' || code[n - 1] == ' ')) code[--n] = 0;
    if (!n || n > FINDING_MAX_SUGGESTION || strstr(code, "```") || strstr(code, "~~~")) {
        free(code);
        return NULL;
    }
    return code;
}

/* ---- echo of the prompt ------------------------------------------------- */

struct findings_echo {
    uint64_t *grams; /* sorted hashes of every run of ECHO_NGRAM words */
    size_t n;
    char *words;     /* the template's words joined by single spaces, with a space at both ends */
};

/* Calls fn(user, word, len) for each word (a run of ASCII letters/digits or non-ASCII bytes), lower-cased. */
static size_t next_word(const char *s, size_t i, size_t len, char *word, size_t cap, size_t *wlen)
{
    while (i < len && !((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
                        (unsigned char)s[i] >= 0x80))
        i++;
    size_t n = 0;
    while (i < len && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
                       (unsigned char)s[i] >= 0x80)) {
        char c = s[i++];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (n + 1 < cap) word[n++] = c;
    }
    word[n] = 0;
    *wlen = n;
    return i;
}

static uint64_t hash_word(const char *w, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)w[i]) * 1099511628211ull;
    return h;
}

static uint64_t hash_gram(const uint64_t *ring, size_t start)
{
    uint64_t h = 0;
    for (size_t k = 0; k < ECHO_NGRAM; k++) h = (h * 0x9E3779B97F4A7C15ull) ^ ring[(start + k) % ECHO_NGRAM];
    return h;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

findings_echo *findings_echo_new(const char *template_text)
{
    findings_echo *e = calloc(1, sizeof *e);
    textbuf plain = {0}, words = {0};
    if (!e) return NULL;
    /* the template without its {{placeholders}} */
    for (const char *p = template_text ? template_text : ""; *p;) {
        const char *open = strstr(p, "{{"), *close = open ? strstr(open, "}}") : NULL;
        if (!close) {
            textbuf_puts(&plain, p);
            break;
        }
        textbuf_add(&plain, p, (size_t)(open - p));
        textbuf_puts(&plain, " \n ");
        p = close + 2;
    }
    size_t cap = plain.len / 2 + 8;
    e->grams = malloc(cap * sizeof *e->grams);
    if (plain.failed || !e->grams) goto fail;
    uint64_t ring[ECHO_NGRAM];
    size_t count = 0, i = 0, len = plain.len;
    char w[64];
    size_t wl;
    textbuf_puts(&words, " ");
    while ((i = next_word(plain.data, i, len, w, sizeof w, &wl)), wl > 0) {
        textbuf_add(&words, w, wl);
        textbuf_puts(&words, " ");
        ring[count % ECHO_NGRAM] = hash_word(w, wl);
        count++;
        if (count >= ECHO_NGRAM && e->n < cap) e->grams[e->n++] = hash_gram(ring, count % ECHO_NGRAM);
    }
    if (words.failed) goto fail;
    qsort(e->grams, e->n, sizeof *e->grams, cmp_u64);
    e->words = textbuf_take(&words);
    textbuf_free(&plain);
    return e;
fail:
    textbuf_free(&plain);
    textbuf_free(&words);
    findings_echo_free(e);
    return NULL;
}

void findings_echo_free(findings_echo *e)
{
    if (!e) return;
    free(e->grams);
    free(e->words);
    free(e);
}

int findings_echo_match(const findings_echo *e, const char *text)
{
    if (!e || !text) return 0;
    uint64_t ring[ECHO_NGRAM];
    size_t count = 0, i = 0, len = strlen(text);
    char w[64];
    size_t wl;
    textbuf joined = {0};
    textbuf_puts(&joined, " ");
    int hit = 0;
    while (!hit && (i = next_word(text, i, len, w, sizeof w, &wl), wl > 0)) {
        textbuf_add(&joined, w, wl);
        textbuf_puts(&joined, " ");
        ring[count % ECHO_NGRAM] = hash_word(w, wl);
        count++;
        if (count >= ECHO_NGRAM) {
            uint64_t h = hash_gram(ring, count % ECHO_NGRAM);
            hit = bsearch(&h, e->grams, e->n, sizeof h, cmp_u64) != NULL;
        }
    }
    /* a short phrase (4 words) copied whole */
    if (!hit && count == 4 && joined.data && e->words) hit = strstr(e->words, joined.data) != NULL;
    textbuf_free(&joined);
    return hit;
}

char *findings_echo_strip(const findings_echo *e, const char *text)
{
    textbuf out = {0};
    const char *p = text ? text : "";
    while (*p) {
        /* a sentence ends at . ! ? followed by a blank, or at a line break */
        const char *end = p;
        while (*end && *end != '\n' && !((*end == '.' || *end == '!' || *end == '?') && (is_blank((unsigned char)end[1]) || !end[1])))
            end++;
        if (*end && *end != '\n') end++;
        size_t n = (size_t)(end - p);
        char *sentence = strndup(p, n);
        if (!sentence) {
            textbuf_free(&out);
            return NULL;
        }
        if (!findings_echo_match(e, sentence)) {
            const char *s = sentence;
            while (is_blank((unsigned char)*s)) s++;
            if (*s) {
                if (out.len) textbuf_puts(&out, " ");
                textbuf_puts(&out, s);
            }
        }
        free(sentence);
        p = end;
        while (is_blank((unsigned char)*p)) p++;
    }
    textbuf_add(&out, "", 0);
    if (out.failed) {
        textbuf_free(&out);
        return NULL;
    }
    size_t len = out.len;
    while (len && out.data[len - 1] == ' ') out.data[--len] = 0;
    return out.data;
}

/* ---- lists -------------------------------------------------------------- */

void finding_free(finding *f)
{
    free(f->path);
    free(f->title);
    free(f->body);
    free(f->suggestion);
    free(f->url);
    memset(f, 0, sizeof *f);
}

void findings_list_free(findings_list *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->n; i++) finding_free(&l->items[i]);
    free(l->items);
    free(l->summary);
    memset(l, 0, sizeof *l);
}

static char *dup_or_null(const char *s, int *oom)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *oom = 1;
    return d;
}

int findings_add(findings_list *l, const finding *f)
{
    if (array_reserve((void **)&l->items, &l->cap, l->n, sizeof *l->items)) return -1;
    finding *d = &l->items[l->n];
    *d = *f;
    int oom = 0;
    d->path = dup_or_null(f->path, &oom);
    d->title = dup_or_null(f->title, &oom);
    d->body = dup_or_null(f->body, &oom);
    d->suggestion = dup_or_null(f->suggestion, &oom);
    d->url = dup_or_null(f->url, &oom);
    if (oom) {
        finding_free(d);
        return -1;
    }
    l->n++;
    return 0;
}

/* ---- parsing the model's JSON ------------------------------------------- */

typedef struct {
    size_t pos;              /* cut after this many bytes */
    char open[MAX_NESTING];  /* brackets open at the cut, outermost first */
    int depth;
    int close_string;        /* the cut is inside a string: close it first */
} cut_point;

/* Tries text[0..n) + closers as JSON; returns the value or NULL. */
static json_t *try_closed(const char *text, const cut_point *c)
{
    textbuf b = {0};
    textbuf_add(&b, text, c->pos);
    if (c->close_string) textbuf_puts(&b, "\"");
    /* a dangling comma or colon cannot be closed over */
    while (b.len && (is_blank((unsigned char)b.data[b.len - 1]) || b.data[b.len - 1] == ',')) b.data[--b.len] = 0;
    for (int d = c->depth - 1; d >= 0; d--) textbuf_puts(&b, c->open[d] == '{' ? "}" : "]");
    json_t *v = NULL;
    if (!b.failed) {
        json_error_t jerr;
        v = json_loadb(b.data, b.len, JSON_DISABLE_EOF_CHECK, &jerr);
    }
    textbuf_free(&b);
    return v;
}

/* The longest prefix of text (which starts with '{' or '[') that closes into JSON, or NULL. */
static json_t *repair(const char *text, size_t len)
{
    cut_point *cuts = calloc(MAX_REPAIR_TRIES, sizeof *cuts);
    if (!cuts) return NULL;
    size_t n_cuts = 0, next = 0; /* ring of the last MAX_REPAIR_TRIES cut points */
    char open[MAX_NESTING];
    int depth = 0, in_string = 0, escape = 0, too_deep = 0;
    size_t last_escape = 0;
    for (size_t i = 0; i < len && !too_deep; i++) {
        char c = text[i];
        int cut_here = 0;
        if (in_string) {
            if (escape) escape = 0;
            else if (c == '\\') {
                escape = 1;
                last_escape = i;
            }
            else if (c == '"') {
                in_string = 0;
                cut_here = 1;
            }
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '{' || c == '[') {
            if (depth == MAX_NESTING) too_deep = 1;
            else open[depth++] = c;
        } else if (c == '}' || c == ']') {
            if (depth == 0) break;
            depth--;
            if (depth == 0) break; /* complete: the plain parse would have worked unless it was damaged */
            cut_here = 1;
        } else if ((c >= '0' && c <= '9') && i + 1 < len && (text[i + 1] == ',' || text[i + 1] == '}' || is_blank((unsigned char)text[i + 1]))) {
            cut_here = 1; /* after a number */
        }
        if (cut_here && depth > 0) {
            cut_point *cp = &cuts[next];
            cp->pos = i + 1;
            cp->depth = depth;
            cp->close_string = 0;
            memcpy(cp->open, open, (size_t)depth);
            next = (next + 1) % MAX_REPAIR_TRIES;
            if (n_cuts < MAX_REPAIR_TRIES) n_cuts++;
        }
    }
    json_t *v = NULL;
    if (!too_deep && depth > 0) {
        /* the end of the text, closed as it is: a summary cut mid-sentence
         * is kept (closing a string deeper down would keep half a finding) */
        cut_point end = {.pos = len, .depth = depth, .close_string = in_string};
        /* an escape cut short ("\\" or "\\u00") cannot be closed over */
        if (in_string && (escape || (text[last_escape + 1] == 'u' && len - last_escape < 6))) end.pos = last_escape;
        memcpy(end.open, open, (size_t)depth);
        if (!in_string || depth == 1) v = try_closed(text, &end);
    }
    for (size_t k = 0; !v && k < n_cuts; k++) {
        size_t idx = (next + MAX_REPAIR_TRIES - 1 - k) % MAX_REPAIR_TRIES;
        v = try_closed(text, &cuts[idx]);
    }
    free(cuts);
    return v;
}

/* The model's text made acceptable to a JSON parser without changing what
 * it says: invalid UTF-8 becomes U+FFFD, and control characters inside
 * strings (a raw line break is a common slip) become escapes. */
static char *json_friendly(const char *text, size_t len, size_t *out_len)
{
    textbuf b = {0};
    int in_string = 0, escape = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)text[i];
        size_t n = engine_utf8_len(text + i, len - i);
        if (n == 0) {
            textbuf_puts(&b, "\xEF\xBF\xBD");
            i++;
            escape = 0;
            continue;
        }
        if (in_string && c < 0x20) {
            textbuf_puts(&b, c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" : " ");
            escape = 0;
        } else {
            textbuf_add(&b, text + i, n);
            if (in_string) {
                if (escape) escape = 0;
                else if (c == '\\') escape = 1;
                else if (c == '"') in_string = 0;
            } else if (c == '"') {
                in_string = 1;
            }
        }
        i += n;
    }
    textbuf_add(&b, "", 0);
    *out_len = b.len;
    return textbuf_take(&b);
}

/* The path in paths that the model meant, or NULL: exact, then without a
 * "./", "a/" or "b/" prefix, then a unique match on whole trailing components. */
static const char *match_path(const char *p, const char *const *paths, size_t n)
{
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++)
            if (!strcmp(p, paths[i])) return paths[i];
        if (!strncmp(p, "./", 2) || !strncmp(p, "a/", 2) || !strncmp(p, "b/", 2)) p += 2;
        else if (p[0] == '/') p += 1;
        else break;
    }
    const char *found = NULL;
    size_t plen = strlen(p);
    if (!plen) return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(paths[i]);
        if (len > plen && paths[i][len - plen - 1] == '/' && !strcmp(paths[i] + len - plen, p)) {
            if (found) return NULL; /* ambiguous */
            found = paths[i];
        }
    }
    return found;
}

/* A positive line number from an integer or a string of digits ("L42", "42-44" take the first number). */
static int json_line(json_t *v, int *second)
{
    if (second) *second = 0;
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        return x > 0 && x < 10000000 ? (int)x : 0;
    }
    const char *s = json_string_value(v);
    if (!s) return 0;
    while (*s && (*s < '0' || *s > '9')) s++;
    long x = strtol(s, (char **)&s, 10);
    if (second && (*s == '-' || *s == ':')) {
        long y = strtol(s + 1, NULL, 10);
        if (y > x && y < 10000000) *second = (int)y;
    }
    return x > 0 && x < 10000000 ? (int)x : 0;
}

/* A text field cleaned, echo-stripped and capped; "" when absent. */
static char *text_field(json_t *obj, const char *key, size_t max, const findings_echo *echo)
{
    const char *s = json_string_value(json_object_get(obj, key));
    size_t len = s ? json_string_length(json_object_get(obj, key)) : 0;
    char *clean = findings_clean_text(s, len, 0);
    if (!clean || !echo) {
        if (clean) cut_text(clean, max);
        return clean;
    }
    char *stripped = findings_echo_strip(echo, clean);
    free(clean);
    if (stripped) cut_text(stripped, max);
    return stripped;
}

static void normalise_title(const char *title, textbuf *out)
{
    char w[64];
    size_t wl, i = 0, len = strlen(title);
    while ((i = next_word(title, i, len, w, sizeof w, &wl)), wl > 0) {
        if (out->len) textbuf_puts(out, " ");
        textbuf_add(out, w, wl);
    }
    textbuf_add(out, "", 0);
}

/* 1 when l already holds the same finding: the same path and line with the
 * same normalised title, or the same explanation word for word (a small
 * model stuck in a loop repeats its body under new titles). */
static int already_listed(const findings_list *l, const finding *f)
{
    textbuf a = {0}, b = {0};
    int same = 0;
    for (size_t i = 0; i < l->n && !same; i++) {
        const finding *g = &l->items[i];
        if (f->body && g->body && strlen(f->body) >= 20 && !strcmp(f->body, g->body)) same = 1;
        if (same || g->model_line != f->model_line || strcmp(g->path, f->path)) continue;
        a.len = b.len = 0;
        normalise_title(f->title, &a);
        normalise_title(g->title, &b);
        same = a.data && b.data && !strcmp(a.data, b.data);
    }
    textbuf_free(&a);
    textbuf_free(&b);
    return same;
}

/* Validates one finding object and appends it; returns 0 (kept or dropped) or -1 (no memory). */
static int add_model_finding(findings_list *l, json_t *obj, const char *const *paths, size_t n_paths,
                             const findings_echo *echo)
{
    if (!json_is_object(obj)) {
        l->dropped++;
        return 0;
    }
    const char *raw_path = json_string_value(json_object_get(obj, "path"));
    if (!raw_path) raw_path = json_string_value(json_object_get(obj, "file"));
    const char *path = raw_path ? match_path(raw_path, paths, n_paths) : NULL;
    int range_end = 0;
    int line = json_line(json_object_get(obj, "line"), &range_end);
    int end_line = json_line(json_object_get(obj, "end_line"), NULL);
    if (!end_line) end_line = range_end;
    const char *sev_name = json_string_value(json_object_get(obj, "severity"));
    int severity = findings_severity_parse(sev_name);
    if (!path || !line || l->n >= FINDINGS_MAX) {
        l->dropped++;
        return 0;
    }
    finding f;
    memset(&f, 0, sizeof f);
    f.path = (char *)path;
    f.model_line = f.line = line;
    f.model_end_line = f.end_line = end_line > line && end_line - line <= 200 ? end_line : 0;
    f.severity = severity < 0 ? SEVERITY_RISK : severity;
    char *title = text_field(obj, "title", FINDING_MAX_TITLE, echo);
    char *body = text_field(obj, "body", FINDING_MAX_BODY, echo);
    if (body && !*body && json_is_string(json_object_get(obj, "message"))) { /* a common other name */
        free(body);
        body = text_field(obj, "message", FINDING_MAX_BODY, echo);
    }
    if (title && body && !*title) { /* the body's first sentence as the title */
        free(title);
        title = strdup(body);
        char *dot = title ? strstr(title, ". ") : NULL;
        if (dot) dot[1] = 0;
        if (title) cut_text(title, FINDING_MAX_TITLE);
    }
    int rc = 0;
    if (!title || !body) {
        rc = -1;
    } else {
        size_t tl = strlen(title);
        while (tl && (title[tl - 1] == '.' || title[tl - 1] == ':' || title[tl - 1] == ' ')) title[--tl] = 0;
        f.title = title;
        f.body = body;
        const char *sug = json_string_value(json_object_get(obj, "suggestion"));
        f.suggestion = sug ? clean_code(sug, json_string_length(json_object_get(obj, "suggestion"))) : NULL;
        if (!*title || already_listed(l, &f)) l->dropped++;
        else rc = findings_add(l, &f);
        free(f.suggestion);
    }
    free(title);
    free(body);
    return rc;
}

int findings_parse(const char *text, size_t len, const char *const *paths, size_t n_paths, const findings_echo *echo,
                   findings_list *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->status = FINDINGS_UNPARSED;
    size_t clean_len = 0;
    char *clean = json_friendly(text ? text : "", text ? len : 0, &clean_len);
    if (!clean) goto oom_early;
    /* the first object; a bare list of findings only when there is no object */
    const char *start = memchr(clean, '{', clean_len);
    if (!start) start = memchr(clean, '[', clean_len);
    if (!start) {
        free(clean);
        return 0;
    }
    size_t n = clean_len - (size_t)(start - clean);
    json_error_t jerr;
    json_t *root = json_loadb(start, n, JSON_DISABLE_EOF_CHECK, &jerr);
    out->status = FINDINGS_PARSED;
    if (!root) {
        root = repair(start, n);
        out->status = root ? FINDINGS_REPAIRED : FINDINGS_UNPARSED;
    }
    free(clean);
    if (!root) return 0;
    json_t *list = NULL;
    if (json_is_array(root)) {
        list = root; /* a bare list of findings */
    } else if (json_is_object(root)) {
        list = json_object_get(root, "findings");
        if (!list && json_object_get(root, "path")) list = root; /* one bare finding */
        out->summary = text_field(root, "summary", FINDING_MAX_SUMMARY, echo);
        if (!out->summary) goto oom;
        if (!*out->summary) {
            free(out->summary);
            out->summary = NULL;
        }
    }
    if (json_is_array(list)) {
        size_t i;
        json_t *item;
        json_array_foreach(list, i, item) if (add_model_finding(out, item, paths, n_paths, echo) < 0) goto oom;
    } else if (json_is_object(list)) {
        if (add_model_finding(out, list, paths, n_paths, echo) < 0) goto oom;
    }
    json_decref(root);
    return 0;
oom:
    json_decref(root);
oom_early:
    findings_list_free(out);
    err_set(err, errlen, "out of memory reading the model's findings");
    return -1;
}

/* ---- anchoring, ranking, fingerprints ------------------------------------ */

typedef struct {
    findings_accept_fn fn;
    void *user;
    size_t file;
} accept_ctx;

static int accept_line(void *user, int line)
{
    const accept_ctx *a = user;
    return a->fn(a->user, a->file, line);
}

void findings_anchor(findings_list *l, const char *const *paths, const linemap *const *maps, size_t n_files,
                     int max_distance, findings_accept_fn accept, void *user)
{
    for (size_t i = 0; i < l->n; i++) {
        finding *f = &l->items[i];
        const linemap *m = NULL;
        size_t file = 0;
        for (size_t k = 0; k < n_files && !m; k++)
            if (!strcmp(paths[k], f->path)) {
                m = maps[k];
                file = k;
            }
        accept_ctx ctx = {accept, user, file};
        int line = m ? linemap_anchor(m, f->model_line, max_distance, accept ? accept_line : NULL, &ctx) : 0;
        f->line = line;
        f->end_line = 0;
        if (!line) {
            f->inline_comment = 0;
            f->why_not_inline = "line not in the diff";
            continue;
        }
        f->inline_comment = 1;
        f->why_not_inline = NULL;
        if (line != f->model_line) {
            free(f->suggestion); /* written for other lines */
            f->suggestion = NULL;
            continue;
        }
        if (f->model_end_line > line) {
            const linemap_hunk *h = &m->hunks[linemap_hunk_of(m, line)];
            int last = f->model_end_line <= h->last_new ? f->model_end_line : h->last_new, end = line;
            while (end < last && (!accept || accept(user, file, end + 1))) end++;
            if (end != f->model_end_line) {
                free(f->suggestion); /* it replaces the cited range, not a shorter one */
                f->suggestion = NULL;
            }
            f->end_line = end > line ? end : 0;
        }
    }
}

void findings_rank(findings_list *l)
{
    for (size_t i = 1; i < l->n; i++) { /* insertion sort: stable, n <= FINDINGS_MAX */
        finding f = l->items[i];
        size_t j = i;
        while (j > 0) {
            const finding *g = &l->items[j - 1];
            int c = g->severity - f.severity;
            if (!c) c = strcmp(g->path, f.path);
            if (!c) c = (g->line ? g->line : g->model_line) - (f.line ? f.line : f.model_line);
            if (c <= 0) break;
            l->items[j] = l->items[j - 1];
            j--;
        }
        l->items[j] = f;
    }
}

void findings_fingerprint(const char *path, const char *title, const char *line_text, size_t line_len, char out[17])
{
    textbuf t = {0};
    normalise_title(title ? title : "", &t);
    while (line_len && is_blank((unsigned char)*line_text)) line_text++, line_len--;
    while (line_len && is_blank((unsigned char)line_text[line_len - 1])) line_len--;
    sha256_ctx ctx;
    uint8_t digest[32];
    char hex[65];
    sha256_init(&ctx);
    sha256_update(&ctx, path, strlen(path));
    sha256_update(&ctx, "\n", 1);
    if (t.data) sha256_update(&ctx, t.data, t.len);
    sha256_update(&ctx, "\n", 1);
    if (line_len) sha256_update(&ctx, line_text, line_len);
    sha256_final(&ctx, digest);
    sha256_hex(digest, hex);
    memcpy(out, hex, 16);
    out[16] = 0;
    textbuf_free(&t);
}

/* ---- the schema of the answer ------------------------------------------------ */

/* Lengths the schema allows; below the FINDING_MAX_* caps, which also bound
 * what a model without the schema writes. */
#define SCHEMA_SUMMARY_CHARS 400
#define SCHEMA_TITLE_CHARS 100
#define SCHEMA_BODY_CHARS 400
#define SCHEMA_SUGGESTION_CHARS 600

static json_t *text_schema(int min, int max, int single_line)
{
    json_t *t = json_pack("{s:s,s:i,s:i}", "type", "string", "minLength", min, "maxLength", max);
    if (t && single_line) json_object_set_new(t, "x-single-line", json_true());
    return t;
}

json_t *findings_schema(const char *const *paths, const int *first_line, const int *last_line, size_t n,
                        int max_findings, int extensions)
{
    json_t *alternatives = json_array();
    for (size_t i = 0; alternatives && i < n; i++) {
        int lo = first_line[i] > 0 ? first_line[i] : 1, hi = last_line[i] >= lo ? last_line[i] : lo;
        json_t *line = json_pack("{s:s,s:i,s:i}", "type", "integer", "minimum", lo, "maximum", hi);
        json_t *end_line = json_deep_copy(line);
        json_t *item = json_pack(
            "{s:s,s:{s:{s:s},s:o,s:o,s:{s:[sss]},s:o,s:o,s:{s:s,s:i}},s:[sssss],s:b}", "type", "object",
            "properties", "path", "const", paths[i], "line", line, "end_line", end_line, "severity", "enum", "bug",
            "risk", "nit", "title", text_schema(3, SCHEMA_TITLE_CHARS, extensions), "body",
            text_schema(0, SCHEMA_BODY_CHARS, extensions), "suggestion", "type", "string", "maxLength",
            SCHEMA_SUGGESTION_CHARS, "required", "path", "line", "severity", "title", "body", "additionalProperties", 0);
        if (!item || json_array_append_new(alternatives, item) < 0) {
            json_decref(alternatives);
            return NULL;
        }
    }
    if (!alternatives) return NULL;
    json_t *items = n == 1 ? json_incref(json_array_get(alternatives, 0)) : json_pack("{s:O}", "anyOf", alternatives);
    json_decref(alternatives);
    if (n == 0) { /* nothing shown: an empty list is the only answer */
        json_decref(items);
        items = NULL;
    }
    json_t *findings = json_pack("{s:s,s:i}", "type", "array", "maxItems", n ? max_findings : 0);
    if (findings && items) json_object_set_new(findings, "items", items);
    return json_pack("{s:s,s:{s:o,s:o},s:[ss],s:b}", "type", "object", "properties", "summary",
                     text_schema(1, SCHEMA_SUMMARY_CHARS, extensions), "findings", findings, "required", "summary",
                     "findings", "additionalProperties", 0);
}

/* ---- review.json ---------------------------------------------------------- */

static void doc_files_free(review_doc_file *f, size_t n)
{
    for (size_t i = 0; f && i < n; i++) {
        free(f[i].path);
        free(f[i].reason);
    }
    free(f);
}

void review_doc_free(review_doc *d)
{
    if (!d) return;
    findings_list_free(&d->f);
    for (size_t i = 0; d->reviewed && i < d->n_reviewed; i++) free(d->reviewed[i]);
    free(d->reviewed);
    doc_files_free(d->not_shown, d->n_not_shown);
    doc_files_free(d->skipped, d->n_skipped);
    free(d->model);
    free(d->prompt);
    free(d->stop_reason);
    memset(d, 0, sizeof *d);
}

int review_doc_set_files(review_doc *d, const diff_result *diff)
{
    size_t n = diff ? diff->n_files : 0;
    d->reviewed = calloc(n ? n : 1, sizeof *d->reviewed);
    d->not_shown = calloc(n ? n : 1, sizeof *d->not_shown);
    d->skipped = calloc(n ? n : 1, sizeof *d->skipped);
    if (!d->reviewed || !d->not_shown || !d->skipped) return -1;
    for (size_t i = 0; i < n; i++) {
        const diff_file *f = &diff->files[i];
        if (!f->skip_reason) {
            if (!(d->reviewed[d->n_reviewed] = strdup(f->path))) return -1;
            d->n_reviewed++;
            continue;
        }
        review_doc_file *df = f->not_shown ? &d->not_shown[d->n_not_shown++] : &d->skipped[d->n_skipped++];
        df->path = strdup(f->path);
        df->reason = strdup(f->skip_reason);
        if (!df->path || !df->reason) return -1;
    }
    return 0;
}

static json_t *doc_file_array(const review_doc_file *f, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) json_array_append_new(a, json_pack("{s:s,s:s}", "path", f[i].path, "reason", f[i].reason));
    return a;
}

static json_t *finding_json(const finding *f)
{
    json_t *o = json_pack("{s:s,s:i,s:s,s:s,s:s}", "path", f->path, "line", f->line, "severity",
                          findings_severity_name(f->severity), "title", f->title, "body", f->body ? f->body : "");
    if (!o) return NULL;
    if (f->end_line > f->line) json_object_set_new(o, "end_line", json_integer(f->end_line));
    if (f->suggestion) json_object_set_new(o, "suggestion", json_string(f->suggestion));
    json_object_set_new(o, "model_line", json_integer(f->model_line));
    if (f->model_end_line) json_object_set_new(o, "model_end_line", json_integer(f->model_end_line));
    json_object_set_new(o, "inline", json_boolean(f->inline_comment));
    if (!f->inline_comment && f->why_not_inline) json_object_set_new(o, "why_not_inline", json_string(f->why_not_inline));
    if (f->fingerprint[0]) json_object_set_new(o, "fingerprint", json_string(f->fingerprint));
    if (f->duplicate) json_object_set_new(o, "duplicate", json_true());
    if (f->url) json_object_set_new(o, "url", json_string(f->url));
    return o;
}

static const char *status_name(findings_status s)
{
    return s == FINDINGS_PARSED ? "parsed" : s == FINDINGS_REPAIRED ? "repaired" : "unparsed";
}

char *review_doc_to_json(const review_doc *d)
{
    json_t *findings = json_array(), *reviewed = json_array();
    for (size_t i = 0; findings && i < d->f.n; i++) json_array_append_new(findings, finding_json(&d->f.items[i]));
    for (size_t i = 0; reviewed && i < d->n_reviewed; i++) json_array_append_new(reviewed, json_string(d->reviewed[i]));
    json_t *root = json_pack(
        "{s:i,s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:o,s:{s:o,s:o,s:o},s:{s:i,s:i,s:f},s:s,s:i}", "version", 1, "repo", d->repo,
        "pr", (json_int_t)d->pr, "base_sha", d->base_sha, "head_sha", d->head_sha, "model", d->model ? d->model : "",
        "prompt", d->prompt ? d->prompt : "", "summary", d->f.summary ? d->f.summary : "", "findings", findings, "files",
        "reviewed", reviewed, "not_shown", doc_file_array(d->not_shown, d->n_not_shown), "skipped",
        doc_file_array(d->skipped, d->n_skipped), "stats", "prompt_tokens", d->prompt_tokens, "generated_tokens",
        d->generated_tokens, "seconds", d->seconds, "parse", status_name(d->f.status), "dropped", d->f.dropped);
    if (!root) return NULL;
    if (d->since_sha[0]) json_object_set_new(root, "since_sha", json_string(d->since_sha));
    if (d->stop_reason) json_object_set_new(json_object_get(root, "stats"), "stop_reason", json_string(d->stop_reason));
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return text;
}

/* ---- the strict reader ----------------------------------------------------- */

/* A commit SHA, or "" where the document may leave it empty. */
static int is_sha(const char *s, int allow_empty) { return *s ? hex_is(s, 40) : allow_empty; }

/* A plausible repository path: no control characters, not absolute, no ".." component. */
static int path_ok(const char *p)
{
    size_t n = strlen(p);
    if (!n || n > 1024 || p[0] == '/') return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7F) return 0;
    for (const char *s = p; (s = strstr(s, "..")) != NULL; s += 2)
        if ((s == p || s[-1] == '/') && (s[2] == '/' || s[2] == 0)) return 0;
    return 1;
}

/* The string at key, checked: NULL with err set when missing (if required), not a string or too long. */
static const char *get_string(json_t *o, const char *key, size_t max, int required, const char *where, char *err,
                              size_t errlen, int *bad)
{
    json_t *v = json_object_get(o, key);
    if (!v && !required) return NULL;
    if (!json_is_string(v)) {
        err_set(err, errlen, "%s: \"%s\" must be a string", where, key);
        *bad = 1;
        return NULL;
    }
    if (json_string_length(v) > max) {
        err_set(err, errlen, "%s: \"%s\" is longer than %zu bytes", where, key, max);
        *bad = 1;
        return NULL;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        err_set(err, errlen, "%s: \"%s\" contains a NUL byte", where, key);
        *bad = 1;
        return NULL;
    }
    return json_string_value(v);
}

static int get_int(json_t *o, const char *key, long lo, long hi, int required, long *out, const char *where, char *err,
                   size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!v && !required) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        err_set(err, errlen, "%s: \"%s\" must be an integer from %ld to %ld", where, key, lo, hi);
        return -1;
    }
    *out = (long)json_integer_value(v);
    return 0;
}

static int parse_doc_finding(json_t *o, size_t index, review_doc *d, char *err, size_t errlen)
{
    char where[64];
    snprintf(where, sizeof where, "findings[%zu]", index);
    if (!json_is_object(o)) {
        err_set(err, errlen, "%s must be an object", where);
        return -1;
    }
    int bad = 0;
    const char *path = get_string(o, "path", 1024, 1, where, err, errlen, &bad);
    const char *sev = bad ? NULL : get_string(o, "severity", 16, 1, where, err, errlen, &bad);
    const char *title = bad ? NULL : get_string(o, "title", FINDING_MAX_TITLE * 2, 1, where, err, errlen, &bad);
    const char *body = bad ? NULL : get_string(o, "body", FINDING_MAX_BODY * 2, 1, where, err, errlen, &bad);
    const char *sug = bad ? NULL : get_string(o, "suggestion", FINDING_MAX_SUGGESTION, 0, where, err, errlen, &bad);
    if (bad) return -1;
    if (!path_ok(path)) {
        err_set(err, errlen, "%s: \"path\" is not a repository path", where);
        return -1;
    }
    int severity = -1;
    for (int s = 0; s <= SEVERITY_NIT; s++)
        if (!strcmp(sev, severity_names[s])) severity = s;
    if (severity < 0) {
        err_set(err, errlen, "%s: \"severity\" must be bug, risk or nit", where);
        return -1;
    }
    long line = 0, end_line = 0, model_line = 0;
    if (get_int(o, "line", 0, 10000000, 1, &line, where, err, errlen) < 0 ||
        get_int(o, "end_line", 0, 10000000, 0, &end_line, where, err, errlen) < 0 ||
        get_int(o, "model_line", 0, 10000000, 0, &model_line, where, err, errlen) < 0)
        return -1;
    if (end_line && end_line < line) {
        err_set(err, errlen, "%s: \"end_line\" is before \"line\"", where);
        return -1;
    }
    json_t *inl = json_object_get(o, "inline");
    if (inl && !json_is_boolean(inl)) {
        err_set(err, errlen, "%s: \"inline\" must be true or false", where);
        return -1;
    }
    finding f;
    memset(&f, 0, sizeof f);
    f.path = (char *)path;
    f.line = (int)line;
    f.end_line = end_line > line ? (int)end_line : 0;
    f.model_line = model_line ? (int)model_line : (int)line;
    f.severity = severity;
    f.inline_comment = inl ? json_is_true(inl) : line > 0;
    f.title = findings_clean_text(title, strlen(title), FINDING_MAX_TITLE);
    f.body = findings_clean_text(body, strlen(body), FINDING_MAX_BODY);
    f.suggestion = sug ? clean_code(sug, strlen(sug)) : NULL;
    int rc = 0;
    if (!f.title || !f.body) rc = -1;
    else if (!*f.title) {
        err_set(err, errlen, "%s: \"title\" is empty", where);
        rc = -2;
    } else if (findings_add(&d->f, &f) < 0) rc = -1;
    if (rc == -1) err_set(err, errlen, "out of memory reading the review document");
    free(f.title);
    free(f.body);
    free(f.suggestion);
    return rc ? -1 : 0;
}

static int parse_doc_files(json_t *files, review_doc *d, char *err, size_t errlen)
{
    if (!json_is_object(files)) {
        err_set(err, errlen, "\"files\" must be an object");
        return -1;
    }
    json_t *rev = json_object_get(files, "reviewed");
    if (!json_is_array(rev) || json_array_size(rev) > REVIEW_DOC_MAX_FILES) {
        err_set(err, errlen, "\"files.reviewed\" must be an array of at most %d paths", REVIEW_DOC_MAX_FILES);
        return -1;
    }
    d->reviewed = calloc(json_array_size(rev) + 1, sizeof *d->reviewed);
    if (!d->reviewed) goto oom;
    size_t i;
    json_t *v;
    json_array_foreach(rev, i, v)
    {
        const char *p = json_string_value(v);
        if (!p || !path_ok(p)) {
            err_set(err, errlen, "\"files.reviewed[%zu]\" is not a repository path", i);
            return -1;
        }
        if (!(d->reviewed[d->n_reviewed] = strdup(p))) goto oom;
        d->n_reviewed++;
    }
    const char *groups[2] = {"not_shown", "skipped"};
    for (int g = 0; g < 2; g++) {
        json_t *arr = json_object_get(files, groups[g]);
        if (!arr) continue;
        if (!json_is_array(arr) || json_array_size(arr) > REVIEW_DOC_MAX_FILES) {
            err_set(err, errlen, "\"files.%s\" must be an array of at most %d entries", groups[g], REVIEW_DOC_MAX_FILES);
            return -1;
        }
        review_doc_file *list = calloc(json_array_size(arr) + 1, sizeof *list);
        if (!list) goto oom;
        if (g == 0) d->not_shown = list;
        else d->skipped = list;
        size_t *count = g == 0 ? &d->n_not_shown : &d->n_skipped;
        json_array_foreach(arr, i, v)
        {
            char where[64];
            int bad = 0;
            snprintf(where, sizeof where, "files.%s[%zu]", groups[g], i);
            if (!json_is_object(v)) {
                err_set(err, errlen, "%s must be an object", where);
                return -1;
            }
            const char *p = get_string(v, "path", 1024, 1, where, err, errlen, &bad);
            const char *r = bad ? NULL : get_string(v, "reason", 300, 1, where, err, errlen, &bad);
            if (bad) return -1;
            if (!path_ok(p)) {
                err_set(err, errlen, "%s: \"path\" is not a repository path", where);
                return -1;
            }
            list[*count].path = strdup(p);
            list[*count].reason = findings_clean_text(r, strlen(r), 300);
            (*count)++;
            if (!list[*count - 1].path || !list[*count - 1].reason) goto oom;
        }
    }
    return 0;
oom:
    err_set(err, errlen, "out of memory reading the review document");
    return -1;
}

int review_doc_parse(const char *text, size_t len, review_doc *d, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    if (len > REVIEW_DOC_MAX_BYTES) {
        err_set(err, errlen, "review document is %zu bytes, over the %u-byte limit", len, REVIEW_DOC_MAX_BYTES);
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        err_set(err, errlen, "review document is not valid JSON: %s (line %d)", jerr.text, jerr.line);
        return -1;
    }
    int bad = 0;
    long version = 0, pr = 0;
    const char *repo, *base, *head, *since, *model, *prompt, *summary;
    json_t *findings = json_object_get(root, "findings");
    if (!json_is_object(root)) {
        err_set(err, errlen, "review document must be a JSON object");
        goto fail;
    }
    if (get_int(root, "version", 1, 1, 1, &version, "review document", err, errlen) < 0 ||
        get_int(root, "pr", 0, 1000000000, 1, &pr, "review document", err, errlen) < 0)
        goto fail;
    repo = get_string(root, "repo", 200, 1, "review document", err, errlen, &bad);
    base = bad ? NULL : get_string(root, "base_sha", 40, 1, "review document", err, errlen, &bad);
    head = bad ? NULL : get_string(root, "head_sha", 40, 1, "review document", err, errlen, &bad);
    since = bad ? NULL : get_string(root, "since_sha", 40, 0, "review document", err, errlen, &bad);
    model = bad ? NULL : get_string(root, "model", 200, 1, "review document", err, errlen, &bad);
    prompt = bad ? NULL : get_string(root, "prompt", 200, 1, "review document", err, errlen, &bad);
    summary = bad ? NULL : get_string(root, "summary", FINDING_MAX_SUMMARY * 2, 1, "review document", err, errlen, &bad);
    if (bad) goto fail;
    if (!is_sha(base, 1) || !is_sha(head, 1) || (since && !is_sha(since, 1))) {
        err_set(err, errlen, "review document: base_sha, head_sha and since_sha must be 40 lower-case hex digits");
        goto fail;
    }
    if (!gh_repo_name_valid(repo)) {
        err_set(err, errlen, "review document: \"repo\" must be owner/name");
        goto fail;
    }
    if (!json_is_array(findings) || json_array_size(findings) > FINDINGS_MAX) {
        err_set(err, errlen, "review document: \"findings\" must be an array of at most %d findings", FINDINGS_MAX);
        goto fail;
    }
    d->version = 1;
    d->pr = pr;
    snprintf(d->repo, sizeof d->repo, "%s", repo);
    snprintf(d->base_sha, sizeof d->base_sha, "%s", base);
    snprintf(d->head_sha, sizeof d->head_sha, "%s", head);
    snprintf(d->since_sha, sizeof d->since_sha, "%s", since ? since : "");
    d->model = findings_clean_text(model, strlen(model), 200);
    d->prompt = findings_clean_text(prompt, strlen(prompt), 200);
    d->f.summary = findings_clean_text(summary, strlen(summary), FINDING_MAX_SUMMARY);
    if (!d->model || !d->prompt || !d->f.summary) {
        err_set(err, errlen, "out of memory reading the review document");
        goto fail;
    }
    if (!*d->f.summary) {
        free(d->f.summary);
        d->f.summary = NULL;
    }
    size_t i;
    json_t *item;
    json_array_foreach(findings, i, item) if (parse_doc_finding(item, i, d, err, errlen) < 0) goto fail;
    if (parse_doc_files(json_object_get(root, "files"), d, err, errlen) < 0) goto fail;
    json_t *stats = json_object_get(root, "stats");
    if (json_is_object(stats)) {
        long v = 0;
        if (get_int(stats, "prompt_tokens", 0, 100000000, 0, &v, "stats", err, errlen) < 0) goto fail;
        d->prompt_tokens = (int)v;
        v = 0;
        if (get_int(stats, "generated_tokens", 0, 100000000, 0, &v, "stats", err, errlen) < 0) goto fail;
        d->generated_tokens = (int)v;
        json_t *sec = json_object_get(stats, "seconds");
        d->seconds = json_is_number(sec) && json_number_value(sec) >= 0 && json_number_value(sec) < 1e7 ? json_number_value(sec) : 0;
    }
    json_decref(root);
    return 0;
fail:
    json_decref(root);
    review_doc_free(d);
    return -1;
}
