/*
 * json_schema.h - a JSON-Schema subset turned into grammar text for
 * constrained decoding (engine/grammar.h), so a model can only write JSON
 * documents that satisfy the schema.
 *
 * Supported (anything else that constrains values is an error, never
 * silently ignored; title, description, $schema, $id, $comment, default and
 * examples are ignored as annotations):
 *   type            "object", "array", "string", "integer", "number",
 *                   "boolean", "null", or a list of these
 *   properties      written in the schema's key order; required ones always,
 *   required        the others may be left out (no property outside the list)
 *   additionalProperties  false or true (either way only the listed keys)
 *   items, minItems, maxItems
 *   minLength, maxLength  in characters; an escape (\n) counts as one
 *   minimum, maximum, exclusiveMinimum, exclusiveMaximum  (integers only)
 *   enum, const     any JSON values, written compactly as jansson encodes them
 *   anyOf, oneOf    alternatives (oneOf is not checked for exclusivity)
 *   x-single-line   prbot's own: true forbids \n, \r, \b and \f in a string
 * An empty schema ({} or true) is any JSON value (objects and arrays nested
 * at most as deep as the grammar's call limit).
 *
 * Strings never contain \u escapes (raw UTF-8 is valid JSON and no lone
 * surrogate can slip out); numbers have at most 18 digits. Between tokens
 * at most `max_space` spaces, tabs or newlines are allowed (0 = compact), so
 * a model cannot loop on whitespace.
 */
#ifndef PRBOT_JSON_SCHEMA_H
#define PRBOT_JSON_SCHEMA_H

#include <jansson.h>
#include <stddef.h>

#define JSON_SCHEMA_DEFAULT_SPACE 24

/* Writes the grammar (malloc'ed, NUL-terminated) to *out. */
int json_schema_to_grammar(const json_t *schema, int max_space, char **out, char *err, size_t errlen);
/* The same from schema text. */
int json_schema_text_to_grammar(const char *text, size_t len, int max_space, char **out, char *err, size_t errlen);

#endif
