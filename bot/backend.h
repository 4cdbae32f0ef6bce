/*
 * backend.h - prbot as a client of a model server.
 *
 * backend_chat sends a conversation to any OpenAI-compatible server (prbot
 * serve, vLLM, Ollama, llama.cpp's server) at URL/v1/chat/completions with
 * stream: true, and hands each piece of the answer to a callback as the
 * server-sent events arrive. Retries and timeouts follow the GitHub client's
 * rules (retry.h): 5xx, 429, dropped connections and stalls (no byte for
 * PRBOT_HTTP_TIMEOUT seconds) are retried with backoff; other errors end it
 * with the server's own message. A retried answer starts over: the callback
 * gets text NULL first, meaning "forget what I sent".
 *
 * ollama_chat is the client of `prbot chat --server URL`: one streamed
 * POST URL/api/chat, NDJSON lines, no retries (a person is watching).
 *
 * The API key goes only into the Authorization header, never into a message.
 */
#ifndef PRBOT_BACKEND_H
#define PRBOT_BACKEND_H

#include <stddef.h>

#include "../engine/engine.h"

typedef struct {
    const char *url;     /* http(s)://host:port, optionally ending in /v1 or /v1/chat/completions */
    const char *model;   /* NULL: none sent (prbot serve then uses its default model) */
    const char *api_key; /* NULL = no Authorization header */
} backend_options;

typedef struct {
    int prompt_tokens, completion_tokens; /* from the usage the server reports; -1 when it reports none */
    char model[128];                      /* the model the server says answered */
    char finish_reason[32];               /* "stop", "length", ... */
} backend_result;

/* A piece of the answer (NULL: start over, the attempt is being retried). Return non-zero to stop. */
typedef int (*backend_text_fn)(const char *text, void *user);

/* Returns 0, or -1 with one line in err. total_s bounds each attempt (0 = an hour). */
int backend_chat(const backend_options *o, const engine_chat_msg *msgs, int n_msgs, int max_tokens, double temperature,
                 double total_s, backend_text_fn on_text, void *user, backend_result *res, char *err, size_t errlen);

/* One chat turn through an Ollama-style server's /api/chat, streamed. */
int ollama_chat(const char *url, const char *model, const engine_chat_msg *msgs, int n_msgs, backend_text_fn on_text,
                void *user, char *err, size_t errlen);

/* The URL for path on a server given as url (a trailing slash, /v1 or the full
 * /v1/chat/completions in url are accepted). malloc'ed. */
char *backend_endpoint(const char *url, const char *path);

#endif
