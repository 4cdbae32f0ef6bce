/*
 * fuzz_server_request.c - `prbot serve`'s request parsing under libFuzzer.
 *
 * An input is: one byte choosing the endpoint (its value modulo the number
 * of endpoints), then an Authorization header value up to the first NUL
 * byte, then the request body. Each input goes through exactly what a
 * connection thread does before it queues a job: route, API key check,
 * parse; and, when the body parses, the answer formats with the parsed
 * values (model name, stop sequences) fed back in. Seeds are in
 * tests/fuzz/corpus/server_request/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../bot/server_api.h"

static const struct {
    const char *method, *path;
} endpoints[] = {
    {"POST", "/v1/chat/completions"}, {"POST", "/v1/completions"}, {"POST", "/api/generate"},
    {"POST", "/api/chat"},            {"POST", "/api/create"},     {"DELETE", "/api/delete"},
    {"POST", "/api/show"},            {"POST", "/api/pull"},       {"POST", "/generate"},
    {"GET", "/v1/models?x=1"},        {"GET", "/health"},          {"PUT", "/v1/chat/completions"},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t which = data[0] % (sizeof endpoints / sizeof endpoints[0]);
    const char *rest = (const char *)data + 1;
    size_t len = size - 1;
    const char *nul = memchr(rest, 0, len);
    char auth[256] = "";
    if (nul) {
        size_t n = (size_t)(nul - rest) < sizeof auth - 1 ? (size_t)(nul - rest) : sizeof auth - 1;
        memcpy(auth, rest, n);
        len -= (size_t)(nul - rest) + 1;
        rest = nul + 1;
    }
    int status;
    api_endpoint ep = api_route(endpoints[which].method, endpoints[which].path, &status);
    (void)api_auth_ok(auth, "sk-fuzz-key");
    engine_sampling defaults;
    engine_sampling_defaults(&defaults);
    api_request r = {0}; /* api_parse sets it; an unknown route never reaches it */
    char err[512] = "";
    if (ep != API_NONE && api_parse(ep, rest, len, &defaults, &r, err, sizeof err) == 0 && api_generates(ep)) {
        api_stream s = {ep, "id-1", r.model ? r.model : "default", 0, r.include_usage};
        api_result res = {3, 1, 2, "stop", 0.1, 0, 0.05, 0.05};
        char *parts[4] = {api_stream_begin(&s), api_stream_delta(&s, r.prompt ? r.prompt : "x", 0),
                          api_stream_end(&s, &res), api_complete_body(&s, r.n_stop ? r.stop[0] : "", &res)};
        for (int i = 0; i < 4; i++) free(parts[i]);
        const char *text = r.prompt ? r.prompt : "";
        int hit;
        (void)api_stop_scan(text, strlen(text), 0, r.stop, r.n_stop, 0, &hit);
    }
    api_request_free(&r);
    free(api_error_body(ep, 400, err));
    return 0;
}
