/*
 * test_errors.c - err_set, err_append and log_note write one line each,
 * whatever the text they quote (engine/errors.c); the result codes are
 * distinct and named.
 *
 * Error lines quote what a file or a server sent: a GGUF metadata key, a
 * tensor name, an API message. A newline in it would make a second line
 * (in an Actions log, "::" at the start of a line is a runner command); the
 * fuzzer found one in a GGUF key.
 */
#include "test.h"

#include "../engine/errors.h"

static char last_line[256];
static int n_lines;

static void sink(const char *line, void *user)
{
    (void)user;
    snprintf(last_line, sizeof last_line, "%s", line);
    n_lines++;
}

static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7F) return 1;
    return 0;
}

static void test_err_set_one_line(void)
{
    char err[128];
    err_set(err, sizeof err, "%s: metadata %s is not supported", "m.gguf", "llama.feel\n::add-mask::x\r\t\x1b[2J");
    EXPECT(!has_control(err), "control bytes kept: %s", err);
    EXPECT(!strcmp(err, "m.gguf: metadata llama.feel?::add-mask::x???[2J is not supported"), "text changed: %s", err);
    err_set(err, 4, "%s", "ab\ncd"); /* cut to the buffer, still one line */
    EXPECT(!strcmp(err, "ab?"), "cut: %s", err);
    err_set(NULL, 0, "%s", "ignored"); /* a caller that wants no message */
    err_set(err, sizeof err, "plain UTF-8 \xC3\xA9 stays");
    EXPECT(!strcmp(err, "plain UTF-8 \xC3\xA9 stays"), "non-ASCII changed: %s", err);
}

static void test_err_append(void)
{
    char err[32];
    err_set(err, sizeof err, "grammar: bad rule");
    err_append(err, sizeof err, " (%s)", "g.gbnf");
    EXPECT(!strcmp(err, "grammar: bad rule (g.gbnf)"), "appended: %s", err);
    err_append(err, sizeof err, " %s", "a\ntail longer than the room left");
    EXPECT(strlen(err) == sizeof err - 1 && !has_control(err) && !strncmp(err, "grammar: bad rule (g.gbnf) a?", 29),
           "cut to the buffer, one line: %s", err);
    char full[4] = "abc";
    err_append(full, sizeof full, "x");
    EXPECT(!strcmp(full, "abc"), "a full buffer changed: %s", full);
    err_append(NULL, 0, "%s", "ignored");
}

static void test_result_names(void)
{
    const int codes[] = {PRBOT_OK, PRBOT_ERROR, PRBOT_ENOTFOUND, PRBOT_EFORBIDDEN, PRBOT_EINVALID, PRBOT_ENOREPO};
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            EXPECT(codes[i] != codes[j] && strcmp(prbot_result_name(codes[i]), prbot_result_name(codes[j])),
                   "codes %d and %d share a value or a name", codes[i], codes[j]);
    EXPECT(!strcmp(prbot_result_name(PRBOT_EFORBIDDEN), "forbidden") && !strcmp(prbot_result_name(-99), "error"),
           "names: %s, %s", prbot_result_name(PRBOT_EFORBIDDEN), prbot_result_name(-99));
}

static void test_log_note_one_line(void)
{
    log_set(sink, NULL);
    n_lines = 0;
    log_note("retrying: %s", "server said\n::error::pwned");
    EXPECT(n_lines == 1 && !has_control(last_line), "log line: %s", last_line);
    EXPECT(strstr(last_line, "?::error::pwned") != NULL, "text kept: %s", last_line);
    log_set(NULL, NULL);
    log_note("dropped");
    EXPECT(n_lines == 1, "a line reached no sink");
}

int main(void)
{
    TEST_RUN(test_err_set_one_line);
    TEST_RUN(test_err_append);
    TEST_RUN(test_result_names);
    TEST_RUN(test_log_note_one_line);
    return test_exit_code();
}
