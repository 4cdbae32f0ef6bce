/*
 * test_server_api.c - `prbot serve`'s wire formats without a socket.
 *
 * Routing, body parsing (every field's type and range, the errors' wording),
 * the constant-time key check, stop sequences held back across tokens, and
 * the shapes of streamed events. Last, the fuzz target's entry point runs
 * over its seed corpus and a bounded number of deterministic mutations of
 * it, so `make test` and `make test-asan` exercise it even without libFuzzer.
 */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "fuzz/fuzz_server_request.c"
#include "test.h"

static engine_sampling defaults(void)
{
    engine_sampling s;
    engine_sampling_defaults(&s);
    return s;
}

static int parse(api_endpoint ep, const char *body, api_request *r, char *err, size_t errlen)
{
    engine_sampling d = defaults();
    return api_parse(ep, body, strlen(body), &d, r, err, errlen);
}

static void test_routes(void)
{
    int st;
    EXPECT(api_route("POST", "/v1/chat/completions", &st) == API_OPENAI_CHAT && st == 200, "chat");
    EXPECT(api_route("GET", "/api/tags?x=1", &st) == API_OLLAMA_TAGS, "query string ignored");
    EXPECT(api_route("GET", "/v1/chat/completions", &st) == API_NONE && st == 405, "405: %d", st);
    EXPECT(api_route("POST", "/v1/chat/completion", &st) == API_NONE && st == 404, "404: %d", st);
    EXPECT(api_route("DELETE", "/api/delete", &st) == API_OLLAMA_DELETE, "delete");
    EXPECT(api_generates(API_SSE_GENERATE) && !api_generates(API_OLLAMA_TAGS), "generates");
}

static void test_parse_chat(void)
{
    api_request r;
    char err[256];
    REQUIRE(parse(API_OPENAI_CHAT,
                  "{\"model\":\"m\",\"messages\":[{\"role\":\"developer\",\"content\":\"s\"},"
                  "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}],"
                  "\"max_tokens\":7,\"temperature\":0,\"top_p\":0.5,\"seed\":9,\"stop\":[\"x\",\"yz\"],\"stream\":true,"
                  "\"stream_options\":{\"include_usage\":true}}",
                  &r, err, sizeof err) == 0,
            "%s", err);
    EXPECT(r.n_msgs == 2 && !strcmp(r.msgs[0].role, "system") && !strcmp(r.msgs[1].content, "ab"), "messages");
    EXPECT(r.sampling.max_tokens == 7 && r.max_tokens_given && r.sampling.temperature == 0 &&
               r.sampling.top_p == 0.5f && r.sampling.seed == 9,
           "sampling");
    EXPECT(r.n_stop == 2 && !strcmp(r.stop[1], "yz") && r.stream && r.include_usage && !strcmp(r.model, "m"), "rest");
    api_request_free(&r);
    /* Ollama streams unless told not to; its options carry the sampling */
    REQUIRE(parse(API_OLLAMA_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"options\":{\"num_predict\":3}}",
                  &r, err, sizeof err) == 0,
            "%s", err);
    EXPECT(r.stream && r.sampling.max_tokens == 3 && !r.model, "ollama defaults");
    api_request_free(&r);
}

static void test_parse_errors(void)
{
    static const struct {
        api_endpoint ep;
        const char *body, *words;
    } cases[] = {
        {API_OPENAI_CHAT, "{\"messages\":", "malformed JSON"},
        {API_OPENAI_CHAT, "[1]", "JSON object"},
        {API_OPENAI_CHAT, "{}", "'messages'"},
        {API_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", "content"},
        {API_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", "text"},
        {API_OPENAI_CHAT, "{\"messages\":[{\"content\":\"x\"}]}", "role"},
        {API_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":3}", "temperature"},
        {API_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}", "max_tokens"},
        {API_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}", "'n'"},
        {API_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[1]}", "stop"},
        {API_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":\"yes\"}", "stream"},
        {API_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"seed\":-1}", "seed"},
        {API_OPENAI_COMPLETIONS, "{\"prompt\":\"\"}", "prompt"},
        {API_OLLAMA_GENERATE, "{\"prompt\":\"x\",\"options\":[]}", "options"},
        {API_OLLAMA_CREATE, "{\"name\":\"x\"}", "modelpath"},
        {API_OLLAMA_DELETE, "{}", "'name'"},
        {API_SSE_GENERATE, "{\"params\":{\"max_tokens\":1}}", "prompt"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        api_request r;
        char err[256] = "";
        int st = parse(cases[i].ep, cases[i].body, &r, err, sizeof err);
        EXPECT(st == 400 && strstr(err, cases[i].words), "case %zu (%s): %d '%s'", i, cases[i].body, st, err);
        api_request_free(&r);
    }
}

static void test_auth(void)
{
    EXPECT(api_auth_ok("Bearer k3y", "k3y"), "right key");
    EXPECT(!api_auth_ok("Bearer k3", "k3y") && !api_auth_ok("Bearer k3yy", "k3y"), "length");
    EXPECT(!api_auth_ok("bearer k3y", "k3y") && !api_auth_ok("k3y", "k3y") && !api_auth_ok(NULL, "k3y"), "form");
    EXPECT(!api_auth_ok("Bearer ", ""), "an empty key never matches");
}

static void test_stop_scan(void)
{
    char *stop[] = {"END", "\n\n"};
    int hit;
    const char *t = "abc EN";
    /* "EN" could become "END": held back */
    EXPECT(api_stop_scan(t, strlen(t), 0, stop, 2, 0, &hit) == 4 && !hit, "held back");
    t = "abc END more";
    EXPECT(api_stop_scan(t, strlen(t), 4, stop, 2, 0, &hit) == 4 && hit, "cut at the stop");
    t = "abc EN";
    EXPECT(api_stop_scan(t, strlen(t), 0, stop, 2, 1, &hit) == 6 && !hit, "final: all");
    EXPECT(api_stop_scan(t, strlen(t), 0, NULL, 0, 0, &hit) == 6, "no stops: all");
    const char *utf8 = "caf\xc3\xa9";
    char *one[] = {"xyz"};
    size_t n = api_stop_scan(utf8, strlen(utf8), 0, one, 1, 0, &hit);
    EXPECT(n == 3, "never splits a UTF-8 character: %zu", n);
}

static void test_formats(void)
{
    api_stream s = {API_OPENAI_CHAT, "chatcmpl-1", "m", 1700000000, 1};
    api_result res = {10, 4, 2, "length", 1.5, 0.1, 0.2, 1.2};
    char *ev = api_stream_begin(&s);
    EXPECT(ev && !strncmp(ev, "data: {", 7) && strstr(ev, "\"role\":\"assistant\"") &&
               !strcmp(ev + strlen(ev) - 2, "\n\n"),
           "begin: %s", ev);
    free(ev);
    ev = api_stream_end(&s, &res);
    EXPECT(ev && strstr(ev, "\"finish_reason\":\"length\"") && strstr(ev, "\"cached_tokens\":4") &&
               strstr(ev, "data: [DONE]\n\n"),
           "end: %s", ev);
    free(ev);
    s.ep = API_OLLAMA_GENERATE;
    ev = api_stream_end(&s, &res);
    json_t *o = ev ? json_loads(ev, 0, NULL) : NULL;
    EXPECT(o && json_is_true(json_object_get(o, "done")) &&
               json_integer_value(json_object_get(o, "total_duration")) == 1500000000 &&
               json_integer_value(json_object_get(o, "prompt_eval_count")) == 6 && ev[strlen(ev) - 1] == '\n',
           "ollama end: %s", ev);
    json_decref(o);
    free(ev);
    s.ep = API_SSE_GENERATE;
    ev = api_stream_delta(&s, "tok", 3);
    EXPECT(ev && !strcmp(ev, "data: {\"token\":\"tok\",\"index\":3}\n\n"), "sse: %s", ev);
    free(ev);
    ev = api_error_body(API_OPENAI_CHAT, 404, "no such model");
    EXPECT(ev && strstr(ev, "\"type\":\"not_found_error\"") && strstr(ev, "\"code\":404"), "%s", ev);
    free(ev);
    ev = api_error_body(API_OLLAMA_CHAT, 404, "no such model");
    EXPECT(ev && !strcmp(ev, "{\"error\":\"no such model\"}"), "%s", ev);
    free(ev);
}

/* xorshift, so the mutations are the same on every run */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

#define MUTATIONS_PER_SEED 10000

static void test_fuzz_corpus(void)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", "tests/fuzz/corpus/server_request");
    DIR *d = opendir(dir);
    REQUIRE(d, "cannot open %s (run from the repository root)", dir);
    struct dirent *ent;
    int seeds = 0;
    uint8_t buf[4096];
    while ((ent = readdir(d))) {
        if (ent->d_name[0] == '.') continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        seeds++;
        LLVMFuzzerTestOneInput(buf, n);
        uint8_t m[4096];
        for (int i = 0; i < MUTATIONS_PER_SEED; i++) {
            size_t len = n;
            memcpy(m, buf, n);
            int edits = 1 + (int)(next_rand() % 4);
            for (int k = 0; k < edits && len > 0; k++) {
                size_t at = next_rand() % len;
                switch (next_rand() % 4) {
                case 0: m[at] = (uint8_t)next_rand(); break;              /* overwrite */
                case 1: len = at; break;                                 /* truncate */
                case 2: m[at] = "{}[]\":,\\0"[next_rand() % 9]; break;    /* JSON punctuation */
                default: memmove(m + at, m + at + 1, len - at - 1), len--; /* delete */
                }
            }
            LLVMFuzzerTestOneInput(m, len);
        }
    }
    closedir(d);
    EXPECT(seeds >= 5, "only %d seeds", seeds);
}

int main(void)
{
    TEST_RUN(test_routes);
    TEST_RUN(test_parse_chat);
    TEST_RUN(test_parse_errors);
    TEST_RUN(test_auth);
    TEST_RUN(test_stop_scan);
    TEST_RUN(test_formats);
    TEST_RUN(test_fuzz_corpus);
    return test_exit_code();
}
