/*
 * review_schema.h - the shape of the review document of issue 13 (the
 * example in engine/grammar.h) as a JSON schema, for the grammar tests and
 * tools/grammar_bench. The paths include a non-ASCII one and one with quotes
 * so that enum literals are exercised with escapes and multi-byte characters.
 */
#ifndef PRBOT_TEST_REVIEW_SCHEMA_H
#define PRBOT_TEST_REVIEW_SCHEMA_H

static const char review_schema[] =
    "{\"type\": \"object\", \"properties\": {"
    "  \"summary\":  {\"type\": \"string\", \"maxLength\": 400},"
    "  \"findings\": {\"type\": \"array\", \"maxItems\": 8, \"items\": {"
    "    \"type\": \"object\", \"properties\": {"
    "      \"path\":       {\"enum\": [\"src/util.c\", \"lib/\xc3\xa9t\xc3\xa9.py\", \"a \\\"quoted\\\" name\"]},"
    "      \"line\":       {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 100000},"
    "      \"end_line\":   {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 100000},"
    "      \"severity\":   {\"enum\": [\"bug\", \"risk\", \"nit\"]},"
    "      \"title\":      {\"type\": \"string\", \"maxLength\": 100, \"x-single-line\": true},"
    "      \"body\":       {\"type\": \"string\", \"maxLength\": 600},"
    "      \"suggestion\": {\"type\": \"string\", \"maxLength\": 600}},"
    "    \"required\": [\"path\", \"line\", \"severity\", \"title\", \"body\"]}}},"
    "  \"required\": [\"summary\", \"findings\"]}";

#endif
