/*
 * server.h - `prbot serve`: a local model server (see server.c for how it
 * works and server_api.h for the endpoints).
 *
 *   serve_options o = {.model_path = "m.gguf", .models_dir = dir, .host = "127.0.0.1", .port = 11435,
 *                      .parallel = 2, .queue = 16, .max_body = 1 << 20, .time_limit = 300};
 *   server *srv;
 *   if (server_start(&srv, &o, err, sizeof err)) ...   // listening; the model loads in the background
 *   ...                                                  // until a signal
 *   server_stop(srv);
 */
#ifndef PRBOT_SERVER_H
#define PRBOT_SERVER_H

#include <stddef.h>

typedef struct {
    const char *model_path; /* the default model */
    const char *models_dir; /* the registry's directory (models.json), where pulls go */
    const char *host;       /* IPv4 address to bind */
    int port;               /* 0 = any free port (server_port says which) */
    int parallel;           /* generations running at once, interleaved token by token */
    int queue;              /* requests waiting beyond those; more get 503 */
    const char *api_key;    /* NULL = none */
    int n_ctx;              /* context per session; 0 = the model's default */
    int threads;            /* 0 = the CPUs this process may use */
    long max_body;          /* request body limit in bytes */
    double time_limit;      /* seconds one generation may take, prefill included */
    long long memory_mb;    /* loaded models' bound; 0 = half the machine's memory */
    int speculate;          /* draft tokens per step by prompt lookup (engine_sampling.speculate); 0 = off */
} serve_options;

typedef struct server server;

int server_start(server **out, const serve_options *o, char *err, size_t errlen);
int server_port(const server *srv);
void server_stop(server *srv);

#endif
