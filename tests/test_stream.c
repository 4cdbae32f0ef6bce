/*
 * test_stream.c - engine_generate streams every byte of every token.
 *
 * The model (tiny_model.h) makes greedy decoding pick one chosen token at
 * every step. That token's text is long (hundreds of bytes, with multi-byte
 * characters across the 256-byte mark), which is what a fixed-size stream
 * buffer used to cut. What the callback receives is compared with the
 * token's own bytes from engine_token_piece, repeated once per token.
 */
#include <unistd.h>

#include "../engine/engine.h"
#include "test.h"
#include "tiny_model.h"

static char model_path[256];
static char long_token[1024]; /* SentencePiece text: "▁" is a space */

static int write_model(const char *path, int favoured)
{
    const char *tokens[] = {"\xE2\x96\x81" "b", long_token};
    char err[256];
    int rc = tiny_model_write(path, tokens, 2, favoured, 64, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    return rc;
}

typedef struct {
    char *text;
    size_t len, cap;
    int calls;
} collected;

static int collect(int32_t id, const char *text, void *user)
{
    collected *c = user;
    size_t n = strlen(text);
    if (c->len + n + 1 > c->cap) {
        c->cap = (c->len + n + 1) * 2;
        c->text = realloc(c->text, c->cap);
        if (!c->text) return 1;
    }
    memcpy(c->text + c->len, text, n + 1);
    c->len += n;
    c->calls += id >= 0;
    return 0;
}

/* Greedy generation of n_tokens copies of token `favoured`; the streamed text
 * must be that token's bytes n_tokens times. */
static void expect_streamed(int favoured, int n_tokens)
{
    REQUIRE(write_model(model_path, favoured) == 0, "cannot write %s", model_path);
    char err[256];
    engine *e;
    engine_params params = {.n_threads = 1, .n_ctx = 64};
    REQUIRE(engine_open(&e, model_path, &params, err, sizeof err) == 0, "%s", err);
    int32_t prompt[16];
    int n_prompt = engine_tokenize(e, "a", 1, 1, 0, prompt, 16);
    REQUIRE(n_prompt > 0 && n_prompt <= 16, "prompt of %d tokens", n_prompt);
    engine_sampling s;
    engine_sampling_defaults(&s);
    s.temperature = 0;
    s.max_tokens = n_tokens;
    collected got = {0};
    engine_stats stats;
    int32_t ids[8] = {0};
    engine_session *session = NULL;
    int rc = engine_session_new(&session, e, 0, err, sizeof err);
    if (rc == 0) rc = engine_generate(session, prompt, n_prompt, &s, collect, &got, ids, 8, &stats, err, sizeof err);
    char piece[2048];
    int piece_len = engine_token_piece(e, favoured, piece, sizeof piece);
    engine_session_free(session);
    engine_close(e);
    REQUIRE(rc == 0, "generate: %s", err);
    REQUIRE(stats.generated_tokens == n_tokens && ids[0] == favoured, "generated %d tokens, first %d",
            stats.generated_tokens, ids[0]);
    REQUIRE(piece_len > 0 && piece_len < (int)sizeof piece, "piece of %d bytes", piece_len);
    EXPECT(got.len == (size_t)piece_len * n_tokens, "streamed %zu bytes, want %d x %d", got.len, n_tokens,
           piece_len);
    for (int i = 0; i < n_tokens && got.len == (size_t)piece_len * n_tokens; i++)
        EXPECT(memcmp(got.text + (size_t)i * piece_len, piece, (size_t)piece_len) == 0,
               "token %d streamed differently", i);
    EXPECT(got.calls == n_tokens, "%d callbacks for %d tokens", got.calls, n_tokens);
    free(got.text);
}

static void stream_short_token(void) { expect_streamed(4, 3); }

/* 300 bytes of ASCII and 3-byte characters, one of them across byte 256. */
static void stream_long_token(void)
{
    size_t n = 0;
    memcpy(long_token, "\xE2\x96\x81", 3), n += 3;
    while (n < 254) long_token[n++] = 'x';
    while (n < 300) memcpy(long_token + n, "\xE2\x82\xAC", 3), n += 3; /* "€" */
    long_token[n] = 0;
    expect_streamed(5, 3);
}

/* Past any buffer a caller might have picked: 1000 bytes of "€". */
static void stream_very_long_token(void)
{
    size_t n = 0;
    while (n + 3 < 1000) memcpy(long_token + n, "\xE2\x82\xAC", 3), n += 3;
    long_token[n] = 0;
    expect_streamed(5, 2);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(model_path, sizeof model_path, "%s/prbot-test-stream-%d.gguf", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    strcpy(long_token, "c");
    TEST_RUN(stream_short_token);
    TEST_RUN(stream_long_token);
    TEST_RUN(stream_very_long_token);
    unlink(model_path);
    return test_exit_code();
}
