/*
 * json_schema.c - see json_schema.h.
 *
 * Each schema node becomes one rule `nK ::= ...`; objects with optional
 * properties add rules `nK-I-f` / `nK-I-s` ("the properties from I on, none
 * written yet" / "some written, so a comma comes first"), which keeps the
 * commas right for any subset in the fixed key order with 2n rules instead of
 * 2^n alternatives. Whitespace sits before each element and before each
 * closing bracket, never twice in a row, so no two bounded runs of it make
 * the automaton ambiguous. Integer ranges become exact digit patterns: per
 * number of digits, the classic split of [a, z] into a common prefix, a free
 * middle digit and the two edges, which needs no counters and no lookahead.
 */
#include "json_schema.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "textbuf.h"

#define MAX_SCHEMA_DEPTH 32
#define INT_LIMIT 999999999999999999LL /* 18 digits: any such integer fits json_int_t */

typedef struct {
    textbuf rules;
    int n_rules, max_space;
    int uses_value, uses_chr1, uses_number;
    char *err;
    size_t errlen;
    int failed;
} conv;

/* Keys and values of the schema appear in messages: no control byte may
 * break the one-line error. */
static void one_line(char *err, size_t errlen)
{
    for (size_t i = 0; err && i < errlen && err[i]; i++)
        if ((unsigned char)err[i] < 0x20 || err[i] == 0x7F) err[i] = '?';
}

static int conv_fail(conv *c, const char *where, const char *what)
{
    if (!c->failed) err_set(c->err, c->errlen, "json schema at %s: %s", where, what);
    one_line(c->err, c->errlen);
    c->failed = 1;
    return -1;
}

/* A GBNF literal for the bytes s[0..n) (valid UTF-8 from jansson). */
static void add_literal(textbuf *b, const char *s, size_t n)
{
    textbuf_puts(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') textbuf_printf(b, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7F) textbuf_printf(b, "\\x%02X", ch);
        else textbuf_add(b, (const char *)&ch, 1);
    }
    textbuf_puts(b, "\"");
}

/* The literal of a JSON value as jansson writes it compactly. */
static int add_value_literal(conv *c, textbuf *b, const json_t *v, const char *where)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) return conv_fail(c, where, "cannot encode an enum or const value");
    add_literal(b, text, strlen(text));
    free(text);
    return 0;
}

/* A property name as a JSON string literal: quotes, backslashes and control
 * characters escaped as JSON wants them, the rest raw UTF-8. */
static void add_key_literal(textbuf *b, const char *key)
{
    textbuf json = {0};
    textbuf_puts(&json, "\"");
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        if (*p == '"' || *p == '\\') textbuf_printf(&json, "\\%c", *p);
        else if (*p < 0x20) textbuf_printf(&json, "\\u%04x", *p);
        else textbuf_add(&json, (const char *)p, 1);
    }
    textbuf_puts(&json, "\"");
    if (json.failed) b->failed = 1;
    else add_literal(b, json.data, json.len);
    textbuf_free(&json);
}

/* ---- integer ranges ---------------------------------------------------- */

static const char nines[] = "9999999999999999999", zeros[] = "0000000000000000000";

static int all_same(const char *s, int n, char ch)
{
    for (int i = 0; i < n; i++)
        if (s[i] != ch) return 0;
    return 1;
}

/* Decimal strings of n digits in [a, z] (a <= z, both n digits). */
static void digits_between(textbuf *b, const char *a, const char *z, int n)
{
    if (n == 0) {
        textbuf_puts(b, "\"\"");
        return;
    }
    if (a[0] == z[0]) {
        textbuf_printf(b, "\"%c\" ", a[0]);
        digits_between(b, a + 1, z + 1, n - 1);
        return;
    }
    int lo = all_same(a + 1, n - 1, '0') ? a[0] : a[0] + 1; /* first digits free in their tail */
    int hi = all_same(z + 1, n - 1, '9') ? z[0] : z[0] - 1;
    const char *sep = "";
    textbuf_puts(b, "(");
    if (lo != a[0]) {
        textbuf_printf(b, "\"%c\" ", a[0]);
        digits_between(b, a + 1, nines, n - 1);
        sep = " | ";
    }
    if (lo <= hi) {
        textbuf_printf(b, "%s[%c-%c]", sep, lo, hi);
        if (n > 1) textbuf_printf(b, " [0-9]{%d}", n - 1);
        sep = " | ";
    }
    if (hi != z[0]) {
        textbuf_printf(b, "%s\"%c\" ", sep, z[0]);
        digits_between(b, zeros, z + 1, n - 1);
    }
    textbuf_puts(b, ")");
}

/* Integers in [lo, hi], 0 <= lo <= hi, without leading zeros. */
static void nonnegative_range(textbuf *b, int64_t lo, int64_t hi)
{
    char a[24], z[24];
    int la = snprintf(a, sizeof a, "%lld", (long long)lo), lz = snprintf(z, sizeof z, "%lld", (long long)hi);
    textbuf_puts(b, "(");
    for (int len = la; len <= lz; len++) {
        char first[24], last[24];
        if (len == la) memcpy(first, a, (size_t)la + 1);
        else first[0] = '1', memcpy(first + 1, zeros, (size_t)len - 1), first[len] = 0;
        if (len == lz) memcpy(last, z, (size_t)lz + 1);
        else memcpy(last, nines, (size_t)len), last[len] = 0;
        if (len > la) textbuf_puts(b, " | ");
        digits_between(b, first, last, len);
    }
    textbuf_puts(b, ")");
}

static void integer_range(textbuf *b, int64_t lo, int64_t hi)
{
    if (hi < 0) {
        textbuf_puts(b, "\"-\" ");
        nonnegative_range(b, -hi, -lo);
    } else if (lo < 0) {
        textbuf_puts(b, "(\"-\" ");
        nonnegative_range(b, 1, -lo);
        textbuf_puts(b, " | ");
        nonnegative_range(b, 0, hi);
        textbuf_puts(b, ")");
    } else {
        nonnegative_range(b, lo, hi);
    }
}

/* ---- schema nodes ------------------------------------------------------ */

static const char *const known_keywords[] = {
    "type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems", "minLength",
    "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum", "const", "anyOf", "oneOf",
    "x-single-line", "title", "description", "$schema", "$id", "$comment", "default", "examples", NULL,
};

static int check_keywords(conv *c, const json_t *s, const char *where)
{
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)s, key, v) {
        int known = 0;
        for (const char *const *k = known_keywords; *k && !known; k++) known = strcmp(*k, key) == 0;
        if (!known) {
            char what[160];
            snprintf(what, sizeof what, "unsupported keyword \"%.80s\"", key);
            return conv_fail(c, where, what);
        }
    }
    return 0;
}

/* A non-negative integer keyword, or `dflt` when absent. */
static int count_keyword(conv *c, const json_t *s, const char *name, long long dflt, long long *out, const char *where)
{
    const json_t *v = json_object_get(s, name);
    *out = dflt;
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000) {
        char what[96];
        snprintf(what, sizeof what, "\"%s\" must be an integer from 0 to 1000000", name);
        return conv_fail(c, where, what);
    }
    *out = json_integer_value(v);
    return 0;
}

static int convert(conv *c, const json_t *s, const char *where, int depth);

/* Appends `nK ::= body` and returns K. */
static int add_rule(conv *c, textbuf *body)
{
    int k = ++c->n_rules;
    if (body->failed) c->failed = 1;
    textbuf_printf(&c->rules, "n%d ::= %s\n", k, body->data ? body->data : "\"\"");
    textbuf_free(body);
    return c->failed ? -1 : k;
}

static int string_body(conv *c, const json_t *s, textbuf *b, const char *where)
{
    long long min, max;
    if (count_keyword(c, s, "minLength", 0, &min, where) || count_keyword(c, s, "maxLength", -1, &max, where))
        return -1;
    if (max >= 0 && max < min) return conv_fail(c, where, "maxLength is below minLength");
    const json_t *single = json_object_get(s, "x-single-line");
    if (single && !json_is_boolean(single)) return conv_fail(c, where, "\"x-single-line\" must be true or false");
    const char *chr = json_is_true(single) ? "chr1" : "chr";
    if (json_is_true(single)) c->uses_chr1 = 1;
    if (max < 0) textbuf_printf(b, "\"\\\"\" %s{%lld,} \"\\\"\"", chr, min);
    else textbuf_printf(b, "\"\\\"\" %s{%lld,%lld} \"\\\"\"", chr, min, max);
    return 0;
}

/* An integer bound: inclusive value of `name` (or its exclusive variant). */
static int bound(conv *c, const json_t *s, const char *name, const char *exclusive, int upper, int64_t *out,
                 const char *where)
{
    const json_t *v = json_object_get(s, name), *x = json_object_get(s, exclusive);
    double value = upper ? (double)INT_LIMIT : -(double)INT_LIMIT;
    if (v && !json_is_number(v)) return conv_fail(c, where, "minimum and maximum must be numbers");
    if (x && !json_is_number(x)) return conv_fail(c, where, "exclusiveMinimum and exclusiveMaximum must be numbers");
    if (v) value = upper ? floor(json_number_value(v)) : ceil(json_number_value(v));
    if (x) {
        double e = json_number_value(x);
        e = upper ? ceil(e) - 1 : floor(e) + 1;
        value = upper ? fmin(value, e) : fmax(value, e);
    }
    if (value > (double)INT_LIMIT || value < -(double)INT_LIMIT)
        return conv_fail(c, where, "integer bounds must lie within 18 digits");
    *out = (int64_t)value;
    return 0;
}

static int integer_body(conv *c, const json_t *s, textbuf *b, const char *where)
{
    int64_t lo, hi;
    if (bound(c, s, "minimum", "exclusiveMinimum", 0, &lo, where) ||
        bound(c, s, "maximum", "exclusiveMaximum", 1, &hi, where))
        return -1;
    if (lo > hi) return conv_fail(c, where, "no integer lies between the minimum and the maximum");
    integer_range(b, lo, hi);
    return 0;
}

/* Element i on of an object's properties: rule nK-I-f (nothing written yet)
 * or nK-I-s (a comma first). */
static int object_rules(conv *c, int k, const json_t *props, const json_t *required, int *value_rule, int n)
{
    for (int i = n; i >= 0; i--) {
        for (int first = 0; first < 2; first++) {
            textbuf_printf(&c->rules, "n%d-%d-%c ::= ", k, i, first ? 'f' : 's');
            if (i == n) {
                textbuf_puts(&c->rules, "\"\"\n");
                continue;
            }
            const char *key = NULL;
            int j = 0;
            const json_t *v;
            json_object_foreach((json_t *)props, key, v) {
                if (j++ == i) break;
            }
            int req = 0;
            for (size_t r = 0; r < json_array_size(required); r++)
                req |= strcmp(json_string_value(json_array_get(required, r)), key) == 0;
            textbuf_puts(&c->rules, req ? "" : "(");
            textbuf_puts(&c->rules, first ? "ws " : "ws \",\" ws ");
            add_key_literal(&c->rules, key);
            textbuf_printf(&c->rules, " ws \":\" ws n%d n%d-%d-s", value_rule[i], k, i + 1);
            if (!req) textbuf_printf(&c->rules, ") | n%d-%d-%c", k, i + 1, first ? 'f' : 's');
            textbuf_puts(&c->rules, "\n");
        }
    }
    return 0;
}

static int object_body(conv *c, const json_t *s, textbuf *b, const char *where, int depth)
{
    const json_t *props = json_object_get(s, "properties"), *required = json_object_get(s, "required");
    const json_t *extra = json_object_get(s, "additionalProperties");
    if (props && !json_is_object(props)) return conv_fail(c, where, "\"properties\" must be an object");
    if (required && !json_is_array(required)) return conv_fail(c, where, "\"required\" must be an array");
    if (extra && !json_is_boolean(extra)) return conv_fail(c, where, "\"additionalProperties\" must be true or false");
    for (size_t r = 0; r < json_array_size(required); r++) {
        const json_t *name = json_array_get(required, r);
        if (!json_is_string(name) || !json_object_get(props, json_string_value(name)))
            return conv_fail(c, where, "every \"required\" entry must name one of the \"properties\"");
    }
    int n = (int)json_object_size(props);
    if (n == 0) {
        if (json_is_false(extra)) textbuf_puts(b, "\"{\" ws \"}\"");
        else textbuf_puts(b, "jobject"), c->uses_value = 1;
        return 0;
    }
    int *value_rule = malloc((size_t)n * sizeof *value_rule);
    if (!value_rule) return conv_fail(c, where, "out of memory");
    const char *key;
    const json_t *v;
    int i = 0;
    json_object_foreach((json_t *)props, key, v) {
        char sub[256];
        snprintf(sub, sizeof sub, "%.150s.properties.%.80s", where, key);
        if ((value_rule[i++] = convert(c, v, sub, depth + 1)) < 0) {
            free(value_rule);
            return -1;
        }
    }
    int rc = 0;
    if ((int)json_array_size(required) == n) { /* all required: one flat sequence */
        textbuf_puts(b, "\"{\"");
        i = 0;
        json_object_foreach((json_t *)props, key, v) {
            textbuf_puts(b, i ? " ws \",\" ws " : " ws ");
            add_key_literal(b, key);
            textbuf_printf(b, " ws \":\" ws n%d", value_rule[i++]);
        }
        textbuf_puts(b, " ws \"}\"");
    } else {
        int k = ++c->n_rules; /* a number of its own, for the element rules */
        rc = object_rules(c, k, props, required, value_rule, n);
        textbuf_printf(b, "\"{\" n%d-0-f ws \"}\"", k);
    }
    free(value_rule);
    return rc;
}

static int array_body(conv *c, const json_t *s, textbuf *b, const char *where, int depth)
{
    long long min, max;
    if (count_keyword(c, s, "minItems", 0, &min, where) || count_keyword(c, s, "maxItems", -1, &max, where)) return -1;
    if (max >= 0 && max < min) return conv_fail(c, where, "maxItems is below minItems");
    if (max == 0) {
        textbuf_puts(b, "\"[\" ws \"]\"");
        return 0;
    }
    const json_t *items = json_object_get(s, "items");
    char sub[256];
    snprintf(sub, sizeof sub, "%.200s.items", where);
    int item = items ? convert(c, items, sub, depth + 1) : -1;
    if (items && item < 0) return -1;
    char elem[32];
    if (item < 0) snprintf(elem, sizeof elem, "ws value"), c->uses_value = 1;
    else snprintf(elem, sizeof elem, "ws n%d", item);
    char more[48];
    long long rest_min = min > 0 ? min - 1 : 0;
    if (max < 0) snprintf(more, sizeof more, "{%lld,}", rest_min);
    else snprintf(more, sizeof more, "{%lld,%lld}", rest_min, max - 1);
    if (min == 0) textbuf_printf(b, "\"[\" (%s (ws \",\" %s)%s)? ws \"]\"", elem, elem, more);
    else textbuf_printf(b, "\"[\" %s (ws \",\" %s)%s ws \"]\"", elem, elem, more);
    return 0;
}

static int type_body(conv *c, const json_t *s, const char *type, textbuf *b, const char *where, int depth)
{
    if (!strcmp(type, "string")) return string_body(c, s, b, where);
    if (!strcmp(type, "integer")) return integer_body(c, s, b, where);
    if (!strcmp(type, "number")) {
        if (json_object_get(s, "minimum") || json_object_get(s, "maximum") || json_object_get(s, "exclusiveMinimum") ||
            json_object_get(s, "exclusiveMaximum"))
            return conv_fail(c, where, "bounds are supported on integers only");
        c->uses_number = 1;
        textbuf_puts(b, "jnumber");
        return 0;
    }
    if (!strcmp(type, "boolean") || !strcmp(type, "null")) {
        textbuf_puts(b, type[0] == 'b' ? "(\"true\" | \"false\")" : "\"null\"");
        return 0;
    }
    if (!strcmp(type, "object")) return object_body(c, s, b, where, depth);
    if (!strcmp(type, "array")) return array_body(c, s, b, where, depth);
    char what[128];
    snprintf(what, sizeof what, "unknown type \"%.60s\"", type);
    return conv_fail(c, where, what);
}

/* Converts one schema node; returns its rule number K (rule nK), -1 on error. */
static int convert(conv *c, const json_t *s, const char *where, int depth)
{
    if (c->failed) return -1;
    if (depth > MAX_SCHEMA_DEPTH) return conv_fail(c, where, "schema nested too deeply");
    textbuf b = {0};
    if (json_is_true(s) || (json_is_object(s) && json_object_size(s) == 0)) {
        c->uses_value = 1;
        textbuf_puts(&b, "value");
        return add_rule(c, &b);
    }
    if (!json_is_object(s)) return conv_fail(c, where, "a schema must be an object or true");
    if (check_keywords(c, s, where)) return -1;
    const json_t *type = json_object_get(s, "type"), *en = json_object_get(s, "enum"), *cn = json_object_get(s, "const");
    const json_t *any = json_object_get(s, "anyOf");
    if (!any) any = json_object_get(s, "oneOf");
    int rc = 0;
    if (cn) {
        rc = add_value_literal(c, &b, cn, where);
    } else if (en) {
        if (!json_is_array(en) || json_array_size(en) == 0) {
            rc = conv_fail(c, where, "\"enum\" must be a non-empty array");
        } else {
            textbuf_puts(&b, "(");
            for (size_t i = 0; i < json_array_size(en) && !rc; i++) {
                if (i) textbuf_puts(&b, " | ");
                rc = add_value_literal(c, &b, json_array_get(en, i), where);
            }
            textbuf_puts(&b, ")");
        }
    } else if (any) {
        if (!json_is_array(any) || json_array_size(any) == 0) {
            rc = conv_fail(c, where, "\"anyOf\"/\"oneOf\" must be a non-empty array");
        } else {
            textbuf_puts(&b, "(");
            for (size_t i = 0; i < json_array_size(any) && !rc; i++) {
                char sub[256];
                snprintf(sub, sizeof sub, "%.200s.anyOf[%zu]", where, i);
                int k = convert(c, json_array_get(any, i), sub, depth + 1);
                if (k < 0) rc = -1;
                else textbuf_printf(&b, "%sn%d", i ? " | " : "", k);
            }
            textbuf_puts(&b, ")");
        }
    } else if (json_is_string(type)) {
        rc = type_body(c, s, json_string_value(type), &b, where, depth);
    } else if (json_is_array(type) && json_array_size(type) > 0) {
        textbuf_puts(&b, "(");
        for (size_t i = 0; i < json_array_size(type) && !rc; i++) {
            const json_t *t = json_array_get(type, i);
            if (!json_is_string(t)) rc = conv_fail(c, where, "\"type\" lists must hold strings");
            else if (i) textbuf_puts(&b, " | ");
            if (!rc) rc = type_body(c, s, json_string_value(t), &b, where, depth);
        }
        textbuf_puts(&b, ")");
    } else if (type) {
        rc = conv_fail(c, where, "\"type\" must be a string or a list of strings");
    } else {
        rc = conv_fail(c, where, "give a \"type\", \"enum\", \"const\" or \"anyOf\"");
    }
    if (rc) {
        textbuf_free(&b);
        return -1;
    }
    return add_rule(c, &b);
}

int json_schema_to_grammar(const json_t *schema, int max_space, char **out, char *err, size_t errlen)
{
    *out = NULL;
    if (max_space < 0 || max_space > 1000) {
        err_set(err, errlen, "json schema: whitespace limit %d outside 0..1000", max_space);
        return -1;
    }
    conv c = {.max_space = max_space, .err = err, .errlen = errlen};
    int root = convert(&c, schema, "the top", 0);
    if (root < 0) {
        textbuf_free(&c.rules);
        return -1;
    }
    textbuf g = {0};
    textbuf_printf(&g, "root ::= n%d\n", root);
    textbuf_add(&g, c.rules.data, c.rules.len);
    if (max_space) textbuf_printf(&g, "ws ::= [ \\t\\n]{0,%d}\n", max_space);
    else textbuf_puts(&g, "ws ::= \"\"\n");
    /* string characters: anything but a quote, backslash or control character, or a short escape */
    textbuf_puts(&g, "chr ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" [\"\\\\/bfnrt]\n");
    if (c.uses_chr1) textbuf_puts(&g, "chr1 ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" [\"\\\\/t]\n");
    if (c.uses_number || c.uses_value)
        textbuf_puts(&g, "jnumber ::= \"-\"? (\"0\" | [1-9] [0-9]{0,17}) (\".\" [0-9]{1,17})? ([eE] [-+]? [0-9]{1,2})?\n");
    if (c.uses_value)
        textbuf_puts(&g, "value ::= jobject | jarray | \"\\\"\" chr* \"\\\"\" | jnumber | \"true\" | \"false\" | \"null\"\n"
                         "jobject ::= \"{\" (ws \"\\\"\" chr* \"\\\"\" ws \":\" ws value"
                         " (ws \",\" ws \"\\\"\" chr* \"\\\"\" ws \":\" ws value)*)? ws \"}\"\n"
                         "jarray ::= \"[\" (ws value (ws \",\" ws value)*)? ws \"]\"\n");
    textbuf_free(&c.rules);
    if (g.failed) {
        textbuf_free(&g);
        err_set(err, errlen, "json schema: out of memory");
        return -1;
    }
    *out = textbuf_take(&g);
    return 0;
}

int json_schema_text_to_grammar(const char *text, size_t len, int max_space, char **out, char *err, size_t errlen)
{
    json_error_t je;
    json_t *schema = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    *out = NULL;
    if (!schema) {
        err_set(err, errlen, "json schema line %d: %s", je.line, je.text);
        one_line(err, errlen);
        return -1;
    }
    int rc = json_schema_to_grammar(schema, max_space, out, err, errlen);
    json_decref(schema);
    return rc;
}
