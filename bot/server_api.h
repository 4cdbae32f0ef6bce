/*
 * server_api.h - the wire formats of `prbot serve`, apart from any socket.
 *
 * What a request means (api_route, api_parse, api_auth_ok) and what the
 * answer looks like (api_stream_*, api_error_body) are plain functions over
 * strings, so the fuzz target and the unit tests call them exactly as the
 * server does. Three families share one request struct:
 *
 *   OpenAI   GET /v1/models, POST /v1/chat/completions, POST /v1/completions
 *   Ollama   GET /api/version, GET /api/tags, POST /api/show, POST /api/generate,
 *            POST /api/chat, POST /api/create, DELETE /api/delete, POST /api/pull
 *   prbot    POST /generate (server-sent events, one per token), GET /health
 *
 * Adding an endpoint: a row in the route table (server_api.c), its fields in
 * api_parse, and its event shapes in the api_stream_* functions.
 */
#ifndef PRBOT_SERVER_API_H
#define PRBOT_SERVER_API_H

#include <stddef.h>

#include "../engine/engine.h"

typedef enum {
    API_NONE,
    API_HEALTH,
    API_OPENAI_MODELS,
    API_OPENAI_CHAT,
    API_OPENAI_COMPLETIONS,
    API_OLLAMA_VERSION,
    API_OLLAMA_TAGS,
    API_OLLAMA_SHOW,
    API_OLLAMA_GENERATE,
    API_OLLAMA_CHAT,
    API_OLLAMA_CREATE,
    API_OLLAMA_DELETE,
    API_OLLAMA_PULL,
    API_SSE_GENERATE,
} api_endpoint;

#define API_MAX_STOP 4

/* A parsed request body. Strings are owned by the request (free with
 * api_request_free); absent ones are NULL. */
typedef struct {
    api_endpoint ep;
    char *model;             /* requested model name; NULL = the server's default */
    engine_chat_msg *msgs;   /* chat endpoints */
    int n_msgs;
    char *prompt;            /* completion endpoints */
    char *system;            /* Ollama generate: a system message */
    int raw;                 /* Ollama generate: the prompt as is, no chat template */
    engine_sampling sampling;
    int max_tokens_given;    /* the request set max_tokens / num_predict */
    char *stop[API_MAX_STOP];
    int n_stop;
    int stream;              /* stream the answer */
    int include_usage;       /* OpenAI stream_options.include_usage */
    char *name, *path;       /* create / delete / show / pull */
    char *sha256;            /* pull */
    void *owned;             /* the parsed JSON the strings came from */
} api_request;

/* The endpoint for method + path (query string ignored). On API_NONE,
 * *status is 404 (no such path) or 405 (path known, method not). */
api_endpoint api_route(const char *method, const char *path, int *status);
/* 1 when the endpoint's answer comes from generating tokens (it queues). */
int api_generates(api_endpoint ep);
/* 1 for the OpenAI family (error bodies have its shape). */
int api_is_openai(api_endpoint ep);

/* Parses a body for ep with the server's default sampling in *defaults.
 * Returns 0, or an HTTP status (400) with one line in err. */
int api_parse(api_endpoint ep, const char *body, size_t len, const engine_sampling *defaults, api_request *r,
              char *err, size_t errlen);
void api_request_free(api_request *r);

/* Authorization header value against the key: 1 when it is exactly
 * "Bearer KEY". Takes the same time for every header of a given length,
 * whatever the key, so timing tells an attacker nothing about it. */
int api_auth_ok(const char *authorization, const char *key);

/* The error body for status: {"error": {"message", "type", "code"}} for the
 * OpenAI family, {"error": "message"} for the others (Ollama's shape).
 * malloc'ed. */
char *api_error_body(api_endpoint ep, int status, const char *message);

/* How one generation's answer is written. */
typedef struct {
    api_endpoint ep;
    const char *id;    /* "chatcmpl-7" */
    const char *model; /* the model's name as the client asked for it */
    long long created; /* Unix seconds */
    int include_usage;
} api_stream;

typedef struct {
    int prompt_tokens, cached_tokens, completion_tokens;
    const char *finish_reason; /* "stop" or "length" */
    double total_s, load_s, prefill_s, decode_s;
} api_result;

/* Content-Type of a streamed answer. */
const char *api_stream_content_type(api_endpoint ep);
/* The stream's first bytes (OpenAI chat: the role chunk), or "" (malloc'ed). */
char *api_stream_begin(const api_stream *s);
/* One piece of generated text; index counts the pieces from 0. */
char *api_stream_delta(const api_stream *s, const char *text, int index);
/* The end: finish reason, usage or counts, then [DONE] where the format has it. */
char *api_stream_end(const api_stream *s, const api_result *res);
/* An error after the stream began. */
char *api_stream_error(const api_stream *s, const char *message);
/* The whole answer in one JSON body (stream: false). */
char *api_complete_body(const api_stream *s, const char *text, const api_result *res);

/* Maps the engine's stop reason to the APIs' finish reason. */
const char *api_finish_reason(const char *engine_stop_reason);

/* Stop sequences over the text generated so far, text[0..len): looks for a
 * stop sequence starting at or after `from` (what was already sent, less
 * the longest sequence). Returns how much of the text may be sent: up to
 * the first stop sequence (and *hit = 1), else all of it when final, else
 * all but what could still become a stop sequence, never splitting a UTF-8
 * character. */
size_t api_stop_scan(const char *text, size_t len, size_t from, char *const *stop, int n_stop, int final, int *hit);

#endif
