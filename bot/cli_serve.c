/*
 * cli_serve.c - `prbot serve`: options, then the server until SIGINT/SIGTERM.
 *
 * The signals are blocked in every thread (set before any thread starts)
 * and taken by sigwait here, so a Ctrl-C stops the server cleanly instead
 * of interrupting whichever thread it lands on.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_options.h"
#include "commands.h"
#include "registry.h"
#include "server.h"

static const char serve_usage[] =
    "usage: prbot serve --model PATH [options]\n"
    "\n"
    "Serves the model over HTTP: OpenAI-compatible /v1/models, /v1/chat/completions and\n"
    "/v1/completions; Ollama-compatible /api/version, /api/tags, /api/show, /api/generate,\n"
    "/api/chat, /api/create, /api/delete, /api/pull; POST /generate (server-sent events);\n"
    "GET /health.\n"
    "\n"
    "  --model PATH       the default model (GGUF), named by its file name without .gguf\n"
    "  --models DIR       where the model registry (models.json) and pulled models live\n"
    "                     (default: $PRBOT_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/prbot)\n"
    "  --host ADDR        IPv4 address to listen on (default 127.0.0.1: this machine only)\n"
    "  --port N           port (default 11435; 0 picks a free one)\n"
    "  --parallel N       generations at once, taking turns token by token (default 2)\n"
    "  --queue N          requests that may wait beyond those; more get 503 (default 16)\n"
    "  --api-key KEY      require 'Authorization: Bearer KEY' (default: $PRBOT_API_KEY)\n"
    "  --ctx N            context per conversation in tokens (default: min(model's, 4096))\n"
    "  --threads N        inference threads (default: the CPUs this process may use)\n"
    "  --max-body BYTES   largest request body (default 1048576); larger gets 413\n"
    "  --time-limit S     seconds one generation may take, prefill included (default 300)\n"
    "  --memory MB        bound on loaded models; the least recently used idle one is\n"
    "                     unloaded first (default: half of this machine's memory)\n"
    "  --speculate N      draft up to N tokens by prompt lookup and verify them in one batch\n"
    "                     (default 0 = off)\n"
    "\n"
    "Logs one line per request on stderr: method, path, status, tokens, milliseconds.\n";

int cmd_serve(int argc, char **argv)
{
    serve_options o = {.host = "127.0.0.1", .port = 11435, .parallel = 2, .queue = 16, .max_body = 1 << 20,
                       .time_limit = 300};
    int max_body = (int)o.max_body, memory_mb = 0;
    const cli_option opts[] = {
        {"--model", CLI_STRING, &o.model_path}, {"--models", CLI_STRING, &o.models_dir},
        {"--host", CLI_STRING, &o.host},        {"--port", CLI_INT, &o.port},
        {"--parallel", CLI_INT, &o.parallel},   {"--queue", CLI_INT, &o.queue},
        {"--api-key", CLI_STRING, &o.api_key},  {"--ctx", CLI_INT, &o.n_ctx},
        {"--threads", CLI_INT, &o.threads},     {"--max-body", CLI_INT, &max_body},
        {"--time-limit", CLI_DOUBLE, &o.time_limit}, {"--memory", CLI_INT, &memory_mb},
        {"--speculate", CLI_INT, &o.speculate},
        {NULL, 0, NULL},
    };
    int rc = cli_parse("serve", argc, argv, opts, serve_usage, NULL);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    if (!o.model_path) {
        fprintf(stderr, "prbot serve: --model PATH is required (see prbot serve --help)\n");
        return 2;
    }
    if (o.port < 0 || o.port > 65535 || o.parallel < 1 || o.queue < 0 || o.n_ctx < 0 || o.threads < 0 ||
        max_body < 1 || o.time_limit <= 0 || memory_mb < 0 || o.speculate < 0) {
        fprintf(stderr, "prbot serve: --port must be 0-65535, --parallel and --max-body at least 1, --time-limit "
                        "positive, the others not negative\n");
        return 2;
    }
    o.max_body = max_body;
    o.memory_mb = memory_mb;
    if (!o.api_key && getenv("PRBOT_API_KEY") && *getenv("PRBOT_API_KEY")) o.api_key = getenv("PRBOT_API_KEY");
    if (o.api_key && !*o.api_key) o.api_key = NULL;
    char dir[4096], err[1024];
    if (!o.models_dir) {
        if (model_cache_dir(NULL, dir, sizeof dir, err, sizeof err)) {
            fprintf(stderr, "prbot serve: %s (or pass --models DIR)\n", err);
            return 2;
        }
        o.models_dir = dir;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    server *srv;
    if (server_start(&srv, &o, err, sizeof err)) {
        fprintf(stderr, "prbot serve: %s\n", err);
        return 1;
    }
    fprintf(stderr, "prbot serve: listening on http://%s:%d (models: %s; %d parallel, queue %d%s)\n", o.host,
            server_port(srv), o.models_dir, o.parallel, o.queue, o.api_key ? ", API key required" : "");
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "prbot serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    server_stop(srv);
    return 0;
}
