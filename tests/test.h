/*
 * test.h - the tiny test harness every tests/test_*.c uses.
 *
 * A test program runs named tests with TEST_RUN(fn); each prints one line:
 * "ok NAME", "FAIL NAME: file:line: what" or "skip NAME: why". tests/run.sh
 * counts those lines across all programs and scripts and prints the final
 * "N passed, M failed, K skipped". EXPECT records a failure and goes on;
 * REQUIRE records it and leaves the current test.
 */
#ifndef PRBOT_TEST_H
#define PRBOT_TEST_H

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int test_cur_failed, test_cur_skipped, test_n_failed;
static char test_cur_msg[512];
static jmp_buf test_jmp;

static void test_fail_at(const char *file, int line, const char *fmt, ...)
{
    if (!test_cur_failed) {
        va_list ap;
        int n = snprintf(test_cur_msg, sizeof test_cur_msg, "%s:%d: ", file, line);
        va_start(ap, fmt);
        vsnprintf(test_cur_msg + n, sizeof test_cur_msg - (size_t)n, fmt, ap);
        va_end(ap);
    }
    test_cur_failed++;
}

#define EXPECT(cond, ...)                                                                                    \
    do {                                                                                                     \
        if (!(cond)) test_fail_at(__FILE__, __LINE__, __VA_ARGS__);                                          \
    } while (0)
#define REQUIRE(cond, ...)                                                                                   \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            test_fail_at(__FILE__, __LINE__, __VA_ARGS__);                                                   \
            longjmp(test_jmp, 1);                                                                            \
        }                                                                                                    \
    } while (0)
/* Marks the current test skipped (with a reason) and leaves it. */
#define SKIP(...)                                                                                            \
    do {                                                                                                     \
        snprintf(test_cur_msg, sizeof test_cur_msg, __VA_ARGS__);                                            \
        test_cur_skipped = 1;                                                                                \
        longjmp(test_jmp, 1);                                                                                \
    } while (0)

static void test_run_named(const char *name, void (*fn)(void))
{
    test_cur_failed = 0;
    test_cur_skipped = 0;
    test_cur_msg[0] = 0;
    if (setjmp(test_jmp) == 0) fn();
    if (test_cur_failed) {
        printf("FAIL %s: %s\n", name, test_cur_msg);
        test_n_failed++;
    } else if (test_cur_skipped) {
        printf("skip %s: %s\n", name, test_cur_msg);
    } else {
        printf("ok %s\n", name);
    }
    fflush(stdout);
}
#define TEST_RUN(fn) test_run_named(#fn, fn)

/* Runs a test under an explicit name (for table-driven tests). */
#define TEST_RUN_AS(name, fn) test_run_named(name, fn)

static inline int test_exit_code(void) { return test_n_failed ? 1 : 0; }

/* A hang detector for worst-case inputs: if the program is still running
 * `seconds` after this call, it prints "FAIL NAME: ..." and exits. A test of
 * an adversarial input that should take milliseconds would otherwise run for
 * minutes when a quadratic or exponential path comes back; this is not a
 * speed assertion, so give it a margin of 100x or more (sanitizer builds are
 * slow). test_watchdog(NULL, 0) disarms it. */
static const char *test_watchdog_name;
static void test_watchdog_fire(int sig)
{
    static const char why[] = ": still running when the watchdog fired (a worst case is no longer bounded)\n";
    (void)sig;
    if (write(1, "FAIL ", 5) < 0 || write(1, test_watchdog_name, strlen(test_watchdog_name)) < 0 ||
        write(1, why, sizeof why - 1) < 0)
        _exit(2);
    _exit(1);
}
static inline void test_watchdog(const char *name, unsigned seconds)
{
    test_watchdog_name = name;
    if (name) signal(SIGALRM, test_watchdog_fire);
    alarm(name ? seconds : 0);
}

/* ../shared/testdata, or $PRBOT_TESTDATA. */
static inline const char *test_data_dir(void)
{
    const char *d = getenv("PRBOT_TESTDATA");
    return d && *d ? d : "../shared/testdata";
}

/* Joins test_data_dir() and a relative path into a static buffer (rotating, 8 slots). */
static inline const char *test_data_path(const char *rel)
{
    static char bufs[8][1024];
    static int slot;
    char *b = bufs[slot++ & 7];
    snprintf(b, sizeof bufs[0], "%s/%s", test_data_dir(), rel);
    return b;
}

/* SmolLM2-135M-Instruct as tests/setup.sh caches it: $PRBOT_SMOLLM2, else
 * ${PRBOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/prbot}/SmolLM2-135M-Instruct.Q4_1.gguf. */
static inline const char *test_smollm2_path(void)
{
    static char buf[1024];
    const char *p = getenv("PRBOT_SMOLLM2"), *cache = getenv("PRBOT_CACHE"), *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (p && *p) return p;
    if (cache && *cache)
        snprintf(buf, sizeof buf, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", cache);
    else if (xdg && *xdg)
        snprintf(buf, sizeof buf, "%s/prbot/SmolLM2-135M-Instruct.Q4_1.gguf", xdg);
    else
        snprintf(buf, sizeof buf, "%s/.cache/prbot/SmolLM2-135M-Instruct.Q4_1.gguf", home ? home : "");
    return buf;
}

/* Reads a whole file; returns malloc'ed bytes (NUL-terminated) or NULL. */
static inline char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        if (len) *len = (size_t)n;
    }
    return buf;
}

#endif
