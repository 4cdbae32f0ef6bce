/*
 * server_api.c - request parsing and answer formatting for `prbot serve`.
 *
 * Parsing: jansson reads the body (any JSON error is a 400 naming line and
 * column); every field is checked for its type and range before it reaches
 * the engine, and anything unknown is ignored, as the APIs we imitate do.
 * Chat message content may be a string or OpenAI's array of text parts; the
 * parts are joined into one string stored back in the parsed JSON, so every
 * string the request hands out lives exactly as long as the JSON does.
 *
 * Formatting: each api_stream_* function returns one complete unit of the
 * wire format (an SSE event "data: ...\n\n" or an NDJSON line), so the server
 * only ever writes whole events and a client can parse line by line.
 */
#define _GNU_SOURCE /* memmem */
#include "server_api.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errors.h"
#include "textbuf.h"

static const struct {
    const char *method, *path;
    api_endpoint ep;
} routes[] = {
    {"GET", "/health", API_HEALTH},
    {"GET", "/v1/models", API_OPENAI_MODELS},
    {"POST", "/v1/chat/completions", API_OPENAI_CHAT},
    {"POST", "/v1/completions", API_OPENAI_COMPLETIONS},
    {"GET", "/api/version", API_OLLAMA_VERSION},
    {"GET", "/api/tags", API_OLLAMA_TAGS},
    {"POST", "/api/show", API_OLLAMA_SHOW},
    {"POST", "/api/generate", API_OLLAMA_GENERATE},
    {"POST", "/api/chat", API_OLLAMA_CHAT},
    {"POST", "/api/create", API_OLLAMA_CREATE},
    {"DELETE", "/api/delete", API_OLLAMA_DELETE},
    {"POST", "/api/pull", API_OLLAMA_PULL},
    {"POST", "/generate", API_SSE_GENERATE},
};

api_endpoint api_route(const char *method, const char *path, int *status)
{
    size_t len = strcspn(path, "?");
    int path_known = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strlen(routes[i].path) != len || strncmp(routes[i].path, path, len)) continue;
        path_known = 1;
        if (!strcmp(routes[i].method, method)) {
            *status = 200;
            return routes[i].ep;
        }
    }
    *status = path_known ? 405 : 404;
    return API_NONE;
}

int api_generates(api_endpoint ep)
{
    return ep == API_OPENAI_CHAT || ep == API_OPENAI_COMPLETIONS || ep == API_OLLAMA_GENERATE ||
           ep == API_OLLAMA_CHAT || ep == API_SSE_GENERATE;
}

int api_is_openai(api_endpoint ep)
{
    return ep == API_OPENAI_MODELS || ep == API_OPENAI_CHAT || ep == API_OPENAI_COMPLETIONS;
}

/* ---- parsing ------------------------------------------------------------- */

/* A field that must be a string when present: 0 ok (*out may stay NULL), -1 wrong type. */
static int opt_string(json_t *obj, const char *key, const char **out, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) {
        err_set(err, errlen, "'%s' must be a string", key);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

static int opt_number(json_t *obj, const char *key, double lo, double hi, double *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v) || json_number_value(v) < lo || json_number_value(v) > hi) {
        err_set(err, errlen, "'%s' must be a number from %g to %g", key, lo, hi);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

static int opt_int(json_t *obj, const char *key, long long lo, long long hi, long long *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        err_set(err, errlen, "'%s' must be an integer from %lld to %lld", key, lo, hi);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

static int opt_bool(json_t *obj, const char *key, int *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) {
        err_set(err, errlen, "'%s' must be true or false", key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* "stop": a string or an array of up to API_MAX_STOP non-empty strings. */
static int parse_stop(json_t *obj, const char *key, api_request *r, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    if (json_is_string(v)) {
        if (json_string_length(v) == 0) return 0;
        r->stop[r->n_stop++] = strdup(json_string_value(v));
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) > API_MAX_STOP) {
        err_set(err, errlen, "'%s' must be a string or an array of at most %d strings", key, API_MAX_STOP);
        return -1;
    }
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        if (!json_is_string(item)) {
            err_set(err, errlen, "'%s' must be a string or an array of at most %d strings", key, API_MAX_STOP);
            return -1;
        }
        if (json_string_length(item) > 0) r->stop[r->n_stop++] = strdup(json_string_value(item));
    }
    return 0;
}

/* Sampling fields of obj (the request for OpenAI, "options" for Ollama, "params" for /generate). */
static int parse_sampling(json_t *obj, const char *max_key, api_request *r, char *err, size_t errlen)
{
    if (!obj) return 0;
    if (!json_is_object(obj)) {
        err_set(err, errlen, "options must be a JSON object");
        return -1;
    }
    engine_sampling *sp = &r->sampling;
    double temp = sp->temperature, top_p = sp->top_p, min_p = sp->min_p, rep = sp->repeat_penalty;
    long long max_tokens = -1, seed = -1, top_k = sp->top_k;
    if (opt_number(obj, "temperature", 0, 2, &temp, err, errlen) || opt_number(obj, "top_p", 0, 1, &top_p, err, errlen) ||
        opt_number(obj, "min_p", 0, 1, &min_p, err, errlen) ||
        opt_number(obj, "repeat_penalty", 0.1, 10, &rep, err, errlen) ||
        opt_int(obj, "top_k", 0, 1 << 20, &top_k, err, errlen) ||
        opt_int(obj, max_key, 1, 1 << 20, &max_tokens, err, errlen) ||
        opt_int(obj, "seed", 0, (long long)9007199254740991LL, &seed, err, errlen))
        return -1;
    if (!strcmp(max_key, "max_tokens") && max_tokens < 0 &&
        opt_int(obj, "max_completion_tokens", 1, 1 << 20, &max_tokens, err, errlen))
        return -1;
    sp->temperature = (float)temp;
    sp->top_p = (float)top_p;
    sp->min_p = (float)min_p;
    sp->repeat_penalty = (float)rep;
    sp->top_k = (int)top_k;
    if (seed >= 0) sp->seed = (uint64_t)seed;
    if (max_tokens > 0) {
        sp->max_tokens = (int)max_tokens;
        r->max_tokens_given = 1;
    }
    return parse_stop(obj, "stop", r, err, errlen);
}

/* The text of one message's content: a string, or an array of {"type": "text", "text": ...}
 * parts joined (stored back into msg as a string). */
static const char *message_content(json_t *msg, int i, char *err, size_t errlen)
{
    json_t *c = json_object_get(msg, "content");
    if (json_is_string(c)) return json_string_value(c);
    if (!c || json_is_null(c)) return "";
    if (!json_is_array(c)) {
        err_set(err, errlen, "messages[%d].content must be a string or an array of text parts", i);
        return NULL;
    }
    textbuf b = {0};
    size_t k;
    json_t *part;
    json_array_foreach(c, k, part)
    {
        const char *type = json_string_value(json_object_get(part, "type"));
        const char *text = json_string_value(json_object_get(part, "text"));
        if (!json_is_object(part) || !type || strcmp(type, "text") || !text) {
            textbuf_free(&b);
            err_set(err, errlen, "messages[%d].content[%zu]: only {\"type\": \"text\", \"text\": ...} parts are supported",
                    i, k);
            return NULL;
        }
        textbuf_puts(&b, text);
    }
    char *joined = textbuf_take(&b);
    if (!joined) joined = strdup("");
    if (!joined || json_object_set_new(msg, "content", json_string(joined))) {
        free(joined);
        err_set(err, errlen, "messages[%d].content is not valid UTF-8 text", i);
        return NULL;
    }
    free(joined);
    return json_string_value(json_object_get(msg, "content"));
}

static int parse_messages(json_t *root, api_request *r, char *err, size_t errlen)
{
    json_t *msgs = json_object_get(root, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0 || json_array_size(msgs) > 4096) {
        err_set(err, errlen, "'messages' must be a non-empty array of {\"role\", \"content\"} objects");
        return -1;
    }
    r->msgs = calloc(json_array_size(msgs), sizeof *r->msgs);
    if (!r->msgs) {
        err_set(err, errlen, "out of memory");
        return -1;
    }
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        const char *role = json_is_object(m) ? json_string_value(json_object_get(m, "role")) : NULL;
        if (!role) {
            err_set(err, errlen, "messages[%zu] must be an object with a string 'role'", i);
            return -1;
        }
        if (!strcmp(role, "developer")) role = "system"; /* OpenAI's newer name for it */
        if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant")) {
            err_set(err, errlen, "messages[%zu].role must be system, user or assistant (got '%.40s')", i, role);
            return -1;
        }
        const char *content = message_content(m, (int)i, err, errlen);
        if (!content) return -1;
        r->msgs[r->n_msgs++] = (engine_chat_msg){role, content};
    }
    return 0;
}

/* "name" or "model" (Ollama accepts either) into *out, required. */
static int required_name(json_t *root, char **out, char *err, size_t errlen)
{
    const char *name = NULL, *model = NULL;
    if (opt_string(root, "name", &name, err, errlen) || opt_string(root, "model", &model, err, errlen)) return -1;
    if (!name) name = model;
    if (!name || !*name) {
        err_set(err, errlen, "'name' (or 'model') is required");
        return -1;
    }
    *out = strdup(name);
    return 0;
}

static int parse_body(api_endpoint ep, json_t *root, api_request *r, char *err, size_t errlen)
{
    const char *model = NULL, *prompt = NULL, *system = NULL, *path = NULL, *sha = NULL;
    int is_ollama = ep == API_OLLAMA_GENERATE || ep == API_OLLAMA_CHAT;
    if (ep == API_OLLAMA_CREATE || ep == API_OLLAMA_DELETE || ep == API_OLLAMA_SHOW || ep == API_OLLAMA_PULL) {
        if (required_name(root, &r->name, err, errlen)) return -1;
        if (ep == API_OLLAMA_CREATE) {
            if (opt_string(root, "modelpath", &path, err, errlen)) return -1;
            if (!path || !*path) {
                err_set(err, errlen, "'modelpath' (a GGUF file on the server) is required");
                return -1;
            }
            r->path = strdup(path);
        }
        if (ep == API_OLLAMA_PULL) {
            if (opt_string(root, "sha256", &sha, err, errlen)) return -1;
            r->sha256 = dup_or_null(sha);
        }
        return 0;
    }
    if (opt_string(root, "model", &model, err, errlen)) return -1;
    r->model = model && *model ? strdup(model) : NULL;
    r->stream = is_ollama || ep == API_SSE_GENERATE; /* Ollama streams unless told not to */
    if (ep != API_SSE_GENERATE && opt_bool(root, "stream", &r->stream, err, errlen)) return -1;
    switch (ep) {
    case API_OPENAI_CHAT:
    case API_OPENAI_COMPLETIONS: {
        json_t *so = json_object_get(root, "stream_options");
        if (so && !json_is_null(so) && (!json_is_object(so) || opt_bool(so, "include_usage", &r->include_usage, err, errlen))) {
            if (!json_is_object(so)) err_set(err, errlen, "'stream_options' must be an object");
            return -1;
        }
        json_t *n = json_object_get(root, "n");
        if (n && !json_is_null(n) && !(json_is_integer(n) && json_integer_value(n) == 1)) {
            err_set(err, errlen, "'n' must be 1: one choice per request");
            return -1;
        }
        if (parse_sampling(root, "max_tokens", r, err, errlen)) return -1;
        if (ep == API_OPENAI_CHAT) return parse_messages(root, r, err, errlen);
        json_t *p = json_object_get(root, "prompt");
        if (json_is_array(p) && json_array_size(p) == 1) p = json_array_get(p, 0);
        if (!json_is_string(p) || json_string_length(p) == 0) {
            err_set(err, errlen, "'prompt' must be a non-empty string");
            return -1;
        }
        r->prompt = strdup(json_string_value(p));
        return 0;
    }
    case API_OLLAMA_GENERATE:
    case API_OLLAMA_CHAT:
        if (parse_sampling(json_object_get(root, "options"), "num_predict", r, err, errlen)) return -1;
        if (ep == API_OLLAMA_CHAT) return parse_messages(root, r, err, errlen);
        if (opt_string(root, "prompt", &prompt, err, errlen) || opt_string(root, "system", &system, err, errlen) ||
            opt_bool(root, "raw", &r->raw, err, errlen))
            return -1;
        break;
    case API_SSE_GENERATE:
        if (parse_sampling(json_object_get(root, "params"), "max_tokens", r, err, errlen) ||
            opt_string(root, "prompt", &prompt, err, errlen))
            return -1;
        break;
    default:
        return 0;
    }
    if (!prompt || !*prompt) {
        err_set(err, errlen, "'prompt' must be a non-empty string");
        return -1;
    }
    r->prompt = strdup(prompt);
    r->system = dup_or_null(system);
    return 0;
}

int api_parse(api_endpoint ep, const char *body, size_t len, const engine_sampling *defaults, api_request *r,
              char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    r->ep = ep;
    r->sampling = *defaults;
    if (!api_generates(ep) && ep != API_OLLAMA_CREATE && ep != API_OLLAMA_DELETE && ep != API_OLLAMA_SHOW &&
        ep != API_OLLAMA_PULL)
        return 0; /* no body to read */
    json_error_t jerr;
    json_t *root = json_loadb(body ? body : "", len, 0, &jerr);
    if (!root) {
        err_set(err, errlen, "malformed JSON in the request body (line %d, column %d): %s", jerr.line, jerr.column,
                jerr.text);
        return 400;
    }
    r->owned = root;
    if (!json_is_object(root)) {
        err_set(err, errlen, "the request body must be a JSON object");
        return 400;
    }
    if (parse_body(ep, root, r, err, errlen)) return 400;
    return 0;
}

void api_request_free(api_request *r)
{
    free(r->model);
    free(r->msgs);
    free(r->prompt);
    free(r->system);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->name);
    free(r->path);
    free(r->sha256);
    json_decref(r->owned);
    memset(r, 0, sizeof *r);
}

int api_auth_ok(const char *authorization, const char *key)
{
    static const char prefix[] = "Bearer ";
    if (!authorization) authorization = "";
    size_t n = strlen(authorization), klen = strlen(key);
    /* Every byte of the header is compared with the expected "Bearer KEY" (or
     * a placeholder past its end), and the lengths are folded in last. */
    unsigned diff = (unsigned)(n != sizeof prefix - 1 + klen);
    for (size_t i = 0; i < n; i++) {
        unsigned char want = i < sizeof prefix - 1 ? (unsigned char)prefix[i]
                             : i - (sizeof prefix - 1) < klen ? (unsigned char)key[i - (sizeof prefix - 1)]
                                                              : 0;
        diff |= (unsigned)((unsigned char)authorization[i] ^ want);
    }
    return diff == 0 && klen > 0;
}

/* ---- formatting ------------------------------------------------------------ */

static char *dump_event(const api_stream *s, json_t *obj)
{
    char *json = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!json) return NULL;
    textbuf b = {0};
    if (s->ep == API_OLLAMA_GENERATE || s->ep == API_OLLAMA_CHAT || s->ep == API_OLLAMA_PULL)
        textbuf_printf(&b, "%s\n", json);
    else
        textbuf_printf(&b, "data: %s\n\n", json);
    free(json);
    return textbuf_take(&b);
}

static const char *error_type(int status)
{
    switch (status) {
    case 400: case 405: case 413: return "invalid_request_error";
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 503: return "server_busy";
    case 504: return "timeout_error";
    default: return "server_error";
    }
}

char *api_error_body(api_endpoint ep, int status, const char *message)
{
    json_t *o = api_is_openai(ep) ? json_pack("{s:{s:s,s:s,s:i}}", "error", "message", message, "type",
                                              error_type(status), "code", status)
                                  : json_pack("{s:s}", "error", message);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

const char *api_stream_content_type(api_endpoint ep)
{
    return ep == API_OLLAMA_GENERATE || ep == API_OLLAMA_CHAT || ep == API_OLLAMA_PULL ? "application/x-ndjson"
                                                                                      : "text/event-stream";
}

static json_t *openai_head(const api_stream *s, const char *object)
{
    return json_pack("{s:s,s:s,s:I,s:s}", "id", s->id, "object", object, "created", (json_int_t)s->created, "model",
                     s->model);
}

static json_t *usage_json(const api_result *res)
{
    return json_pack("{s:i,s:i,s:i,s:{s:i}}", "prompt_tokens", res->prompt_tokens, "completion_tokens",
                     res->completion_tokens, "total_tokens", res->prompt_tokens + res->completion_tokens,
                     "prompt_tokens_details", "cached_tokens", res->cached_tokens);
}

static json_t *ollama_head(const api_stream *s)
{
    char when[32];
    time_t t = (time_t)s->created;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_pack("{s:s,s:s}", "model", s->model, "created_at", when);
}

/* Ollama's text field: "response" for generate, "message" for chat. */
static void ollama_set_text(json_t *o, api_endpoint ep, const char *text)
{
    if (ep == API_OLLAMA_CHAT)
        json_object_set_new(o, "message", json_pack("{s:s,s:s}", "role", "assistant", "content", text));
    else
        json_object_set_new(o, "response", json_string(text));
}

static long long ns(double s) { return (long long)(s * 1e9); }

static void ollama_set_final(json_t *o, const api_result *res)
{
    json_object_set_new(o, "done", json_true());
    json_object_set_new(o, "done_reason", json_string(res->finish_reason));
    json_object_set_new(o, "total_duration", json_integer(ns(res->total_s)));
    json_object_set_new(o, "load_duration", json_integer(ns(res->load_s)));
    json_object_set_new(o, "prompt_eval_count", json_integer(res->prompt_tokens - res->cached_tokens));
    json_object_set_new(o, "prompt_eval_duration", json_integer(ns(res->prefill_s)));
    json_object_set_new(o, "prompt_cached_count", json_integer(res->cached_tokens));
    json_object_set_new(o, "eval_count", json_integer(res->completion_tokens));
    json_object_set_new(o, "eval_duration", json_integer(ns(res->decode_s)));
}

static json_t *chat_choice(const char *delta_key, json_t *delta, const char *finish)
{
    return json_pack("[{s:i,s:o,s:n,s:o}]", "index", 0, delta_key, delta, "logprobs", "finish_reason",
                     finish ? json_string(finish) : json_null());
}

char *api_stream_begin(const api_stream *s)
{
    if (s->ep != API_OPENAI_CHAT) return strdup("");
    json_t *o = openai_head(s, "chat.completion.chunk");
    json_t *delta = json_pack("{s:s,s:s}", "role", "assistant", "content", "");
    json_object_set_new(o, "choices", chat_choice("delta", delta, NULL));
    return dump_event(s, o);
}

char *api_stream_delta(const api_stream *s, const char *text, int index)
{
    json_t *o = NULL;
    switch (s->ep) {
    case API_OPENAI_CHAT:
        o = openai_head(s, "chat.completion.chunk");
        json_object_set_new(o, "choices", chat_choice("delta", json_pack("{s:s}", "content", text), NULL));
        break;
    case API_OPENAI_COMPLETIONS:
        o = openai_head(s, "text_completion");
        json_object_set_new(o, "choices", json_pack("[{s:s,s:i,s:n,s:n}]", "text", text, "index", 0, "logprobs",
                                                    "finish_reason"));
        break;
    case API_OLLAMA_GENERATE:
    case API_OLLAMA_CHAT:
        o = ollama_head(s);
        ollama_set_text(o, s->ep, text);
        json_object_set_new(o, "done", json_false());
        break;
    default:
        o = json_pack("{s:s,s:i}", "token", text, "index", index);
        break;
    }
    return dump_event(s, o);
}

char *api_stream_end(const api_stream *s, const api_result *res)
{
    textbuf b = {0};
    char *ev = NULL;
    switch (s->ep) {
    case API_OPENAI_CHAT:
    case API_OPENAI_COMPLETIONS: {
        int chat = s->ep == API_OPENAI_CHAT;
        json_t *o = openai_head(s, chat ? "chat.completion.chunk" : "text_completion");
        json_object_set_new(o, "choices",
                            chat ? chat_choice("delta", json_object(), res->finish_reason)
                                 : json_pack("[{s:s,s:i,s:n,s:s}]", "text", "", "index", 0, "logprobs",
                                             "finish_reason", res->finish_reason));
        ev = dump_event(s, o);
        textbuf_puts(&b, ev ? ev : "");
        free(ev);
        if (s->include_usage) {
            o = openai_head(s, chat ? "chat.completion.chunk" : "text_completion");
            json_object_set_new(o, "choices", json_array());
            json_object_set_new(o, "usage", usage_json(res));
            ev = dump_event(s, o);
            textbuf_puts(&b, ev ? ev : "");
            free(ev);
        }
        textbuf_puts(&b, "data: [DONE]\n\n");
        return textbuf_take(&b);
    }
    case API_OLLAMA_GENERATE:
    case API_OLLAMA_CHAT: {
        json_t *o = ollama_head(s);
        ollama_set_text(o, s->ep, "");
        ollama_set_final(o, res);
        return dump_event(s, o);
    }
    default:
        return dump_event(s, json_pack("{s:b,s:i,s:s}", "done", 1, "total_tokens", res->completion_tokens,
                                       "finish_reason", res->finish_reason));
    }
}

char *api_stream_error(const api_stream *s, const char *message)
{
    if (api_is_openai(s->ep))
        return dump_event(s, json_pack("{s:{s:s,s:s,s:i}}", "error", "message", message, "type", "server_error",
                                       "code", 500));
    return dump_event(s, json_pack("{s:s}", "error", message));
}

char *api_complete_body(const api_stream *s, const char *text, const api_result *res)
{
    json_t *o;
    switch (s->ep) {
    case API_OPENAI_CHAT:
        o = openai_head(s, "chat.completion");
        json_object_set_new(o, "choices", chat_choice("message", json_pack("{s:s,s:s}", "role", "assistant",
                                                                           "content", text),
                                                      res->finish_reason));
        json_object_set_new(o, "usage", usage_json(res));
        break;
    case API_OPENAI_COMPLETIONS:
        o = openai_head(s, "text_completion");
        json_object_set_new(o, "choices", json_pack("[{s:s,s:i,s:n,s:s}]", "text", text, "index", 0, "logprobs",
                                                    "finish_reason", res->finish_reason));
        json_object_set_new(o, "usage", usage_json(res));
        break;
    case API_OLLAMA_GENERATE:
    case API_OLLAMA_CHAT:
        o = ollama_head(s);
        ollama_set_text(o, s->ep, text);
        ollama_set_final(o, res);
        break;
    default:
        o = json_pack("{s:s,s:i,s:s}", "text", text, "total_tokens", res->completion_tokens, "finish_reason",
                      res->finish_reason);
        break;
    }
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return body;
}

const char *api_finish_reason(const char *engine_stop_reason)
{
    if (!engine_stop_reason || !strcmp(engine_stop_reason, "eos") || !strcmp(engine_stop_reason, "stop"))
        return "stop";
    return "length";
}

size_t api_stop_scan(const char *text, size_t len, size_t from, char *const *stop, int n_stop, int final, int *hit)
{
    size_t longest = 0, cut = len;
    *hit = 0;
    for (int i = 0; i < n_stop; i++) {
        size_t n = strlen(stop[i]);
        if (n > longest) longest = n;
        size_t start = from < len ? from : len;
        const char *p = n ? memmem(text + start, len - start, stop[i], n) : NULL;
        if (p && (size_t)(p - text) < cut) {
            cut = (size_t)(p - text);
            *hit = 1;
        }
    }
    if (*hit || final) return cut;
    size_t safe = longest > 1 ? (len > longest - 1 ? len - (longest - 1) : 0) : len;
    while (safe > 0 && safe < len && ((unsigned char)text[safe] & 0xC0) == 0x80) safe--;
    return safe;
}
