/*
 * server.c - `prbot serve`: the engine behind OpenAI-, Ollama- and SSE-style
 * HTTP endpoints (formats in server_api.c), on libmicrohttpd.
 *
 * Threads. libmicrohttpd runs one thread per connection; those threads only
 * parse, queue and write. One scheduler thread owns every engine: it loads
 * and unloads models, and runs all generation. The machine this is built for
 * has 2 cores, and one model's thread pool already uses both for each token,
 * so --parallel N does not mean N pools fighting over 2 cores: the scheduler
 * takes the N active generations in turn, one step each (one token, or one
 * prefill chunk of a new prompt), every step on the whole pool. Each
 * generation then gets 1/N of the decode speed, none starves, and a short
 * answer is not stuck behind a long one. (Batching the N tokens into one
 * forward pass would read the weights once for all of them; that needs a
 * multi-sequence forward pass the engine does not have.)
 *
 * A request's life: the connection thread reads the body (at most
 * --max-body bytes, else 413), checks the API key, parses (400), resolves the
 * model name (404) and puts a job in the FIFO. When --parallel jobs are
 * running and --queue more are waiting, it answers 503 with Retry-After
 * instead. The scheduler admits jobs in order, formats and tokenizes the
 * prompt, picks the model's idle session whose cache shares the longest
 * prefix with it (engine_session_common_prefix; a new session while there is
 * room when none shares half, so one conversation does not evict another's
 * cache for a common system prompt), and starts it. Every token's
 * text goes into the job as a piece (held back while it could still be the
 * start of a stop sequence); the connection thread turns pieces into SSE
 * events or NDJSON lines as they come. While it waits it also watches its
 * socket: a client that hung up cancels its job, and the scheduler drops a
 * cancelled job before its next step, so its slot is free within one token.
 * max_tokens, the context and --time-limit bound every generation.
 *
 * Models: --model is the default; the registry (registry.c) in --models DIR
 * names others. Loaded models count their file and KV-cache bytes against
 * --memory; loading one more unloads the least recently used idle ones first.
 *
 * The log has one line per request (log_note, errors.h: stderr under
 * prbot serve): method, path, status, tokens generated and milliseconds.
 * The API key is never printed.
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../engine/engine.h"
#include "errors.h"
#include "registry.h"
#include "server_api.h"
#include "textbuf.h"

#define MAX_LOADED 8
#define WAIT_SLICE_MS 20      /* how often a waiting connection looks at its socket */
#define CONNECTIONS_EXTRA 16  /* connections beyond parallel + queue (health checks, lists) */

extern char **environ;

/* ---- jobs ------------------------------------------------------------------ */

typedef enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE } job_state;

typedef struct loaded_model loaded_model;

typedef struct job {
    api_request req;
    api_stream fmt;
    char id[40];
    char model_name[REGISTRY_NAME_MAX + 1];
    char model_path[4096];
    double t_queued;
    struct job *next; /* in the wait queue */
    /* scheduler's own */
    loaded_model *m;
    int slot;
    int32_t *tokens;
    char *text; /* everything generated so far, for stop sequences */
    size_t text_len, text_cap, text_sent;
    int stopped_by_sequence;
    double load_s;
    /* shared, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job_state state;
    char **pieces;
    int n_pieces, cap_pieces;
    int status; /* HTTP status when it failed before streaming, else 200 */
    char err[512];
    api_result res;
    int refs;
    atomic_int cancelled;
} job;

static job *job_new(void)
{
    job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->refs = 2; /* the connection and the scheduler */
    j->status = 200;
    j->slot = -1;
    return j;
}

static void job_release(job *j)
{
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    int last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (!last) return;
    for (int i = 0; i < j->n_pieces; i++) free(j->pieces[i]);
    free(j->pieces);
    free(j->tokens);
    free(j->text);
    api_request_free(&j->req);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

/* Ends the job with an error (before or during streaming). */
static void job_fail(job *j, int status, const char *msg)
{
    pthread_mutex_lock(&j->mu);
    j->status = j->state == JOB_QUEUED ? status : 200;
    snprintf(j->err, sizeof j->err, "%s", msg);
    j->state = JOB_DONE;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static void job_push_piece(job *j, const char *text, size_t len)
{
    if (len == 0) return;
    char *piece = strndup(text, len);
    pthread_mutex_lock(&j->mu);
    if (piece && j->n_pieces == j->cap_pieces) {
        int cap = j->cap_pieces ? j->cap_pieces * 2 : 64;
        char **p = realloc(j->pieces, (size_t)cap * sizeof *p);
        if (p) j->pieces = p, j->cap_pieces = cap;
    }
    if (piece && j->n_pieces < j->cap_pieces) j->pieces[j->n_pieces++] = piece;
    else free(piece);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* ---- the server ------------------------------------------------------------ */

struct loaded_model {
    char name[REGISTRY_NAME_MAX + 1];
    char path[4096];
    engine *e;
    engine_session **sessions; /* [parallel], created on demand */
    int *session_busy;
    int n_active;
    double last_used, load_s;
    uint64_t bytes;
};

struct server {
    serve_options o;
    struct MHD_Daemon *daemon;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *wait_head, *wait_tail;
    int n_waiting;
    job **active;
    int n_active, rr;
    loaded_model models[MAX_LOADED];
    int n_models;
    model_registry reg;
    char default_name[REGISTRY_NAME_MAX + 1];
    atomic_int ready, stopping;
    pthread_t scheduler;
    uint64_t memory_limit;
    atomic_long next_id;
    engine_sampling defaults;
    char self_exe[4096];
};

/* The name a model file gets by default: its base name without ".gguf". */
static void name_of_path(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    snprintf(out, cap, "%s", slash ? slash + 1 : path);
    size_t n = strlen(out);
    if (n > 5 && !strcmp(out + n - 5, ".gguf")) out[n - 5] = 0;
}

/* The file behind a model name (the default when name is NULL); 0, or -1 when unknown. Under srv->mu. */
static int resolve_model(server *srv, const char *name, char *out_name, char *path, size_t cap)
{
    if (!name || !*name || !strcmp(name, srv->default_name)) {
        snprintf(out_name, REGISTRY_NAME_MAX + 1, "%s", srv->default_name);
        snprintf(path, cap, "%s", srv->o.model_path);
        return 0;
    }
    const char *p = registry_find(&srv->reg, name);
    if (!p) return -1;
    snprintf(out_name, REGISTRY_NAME_MAX + 1, "%s", name);
    snprintf(path, cap, "%s", p);
    return 0;
}

/* ---- models (scheduler thread only, except the table read under mu) ------ */

static void unload(server *srv, int i)
{
    loaded_model *m = &srv->models[i];
    for (int k = 0; k < srv->o.parallel; k++) engine_session_free(m->sessions[k]);
    free(m->sessions);
    free(m->session_busy);
    engine_close(m->e);
    srv->models[i] = srv->models[--srv->n_models];
}

static uint64_t loaded_bytes(const server *srv)
{
    uint64_t total = 0;
    for (int i = 0; i < srv->n_models; i++) total += srv->models[i].bytes;
    return total;
}

/* Unloads least recently used idle models until `need` more bytes fit. */
static void make_room(server *srv, uint64_t need)
{
    while (srv->n_models > 0 && (loaded_bytes(srv) + need > srv->memory_limit || srv->n_models == MAX_LOADED)) {
        int lru = -1;
        for (int i = 0; i < srv->n_models; i++)
            if (srv->models[i].n_active == 0 && (lru < 0 || srv->models[i].last_used < srv->models[lru].last_used))
                lru = i;
        if (lru < 0) return; /* all busy: load anyway, over the bound, rather than fail the request */
        log_note("prbot serve: unloading %s (least recently used) to make room", srv->models[lru].name);
        pthread_mutex_lock(&srv->mu);
        unload(srv, lru);
        pthread_mutex_unlock(&srv->mu);
    }
}

static loaded_model *find_loaded(server *srv, const char *name, const char *path)
{
    for (int i = 0; i < srv->n_models; i++)
        if (!strcmp(srv->models[i].name, name) && !strcmp(srv->models[i].path, path)) return &srv->models[i];
    return NULL;
}

static loaded_model *load_model(server *srv, const char *name, const char *path, char *err, size_t errlen)
{
    loaded_model *m = find_loaded(srv, name, path);
    if (m) return m;
    struct stat st;
    make_room(srv, stat(path, &st) == 0 ? (uint64_t)st.st_size : 0);
    if (srv->n_models == MAX_LOADED) {
        err_set(err, errlen, "%d models are busy; try again later", MAX_LOADED);
        return NULL;
    }
    double t0 = engine_now_s();
    engine_params ep = {.n_threads = srv->o.threads, .n_ctx = srv->o.n_ctx};
    engine *e;
    if (engine_open(&e, path, &ep, err, errlen)) return NULL;
    pthread_mutex_lock(&srv->mu);
    m = &srv->models[srv->n_models];
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->path, sizeof m->path, "%s", path);
    m->e = e;
    m->sessions = calloc((size_t)srv->o.parallel, sizeof *m->sessions);
    m->session_busy = calloc((size_t)srv->o.parallel, sizeof *m->session_busy);
    m->load_s = engine_now_s() - t0;
    m->last_used = engine_now_s();
    m->bytes = engine_get_info(e)->file_bytes;
    srv->n_models++;
    pthread_mutex_unlock(&srv->mu);
    if (!m->sessions || !m->session_busy) {
        err_set(err, errlen, "out of memory");
        return NULL;
    }
    const engine_info *info = engine_get_info(e);
    log_note("prbot serve: loaded %s (%s, %s, %s) in %.2f s, context %d, %d threads", name, info->name,
            info->arch, info->file_type, m->load_s, info->n_ctx, info->n_threads);
    return m;
}

/* The idle session of m whose cache shares most with tokens, or a new one when none shares half. */
static int pick_session(server *srv, loaded_model *m, const int32_t *tokens, int n, char *err, size_t errlen)
{
    int best = -1, best_shared = -1, empty = -1;
    for (int k = 0; k < srv->o.parallel; k++) {
        if (m->session_busy[k]) continue;
        if (!m->sessions[k]) {
            if (empty < 0) empty = k;
            continue;
        }
        int shared = engine_session_common_prefix(m->sessions[k], tokens, n);
        if (shared > best_shared) best = k, best_shared = shared;
    }
    /* A session that shares little (a BOS, a common system prompt) is worth more to the conversation
     * it holds than to this one: start a new session while there is room. */
    if ((best < 0 || 2 * best_shared < n) && empty >= 0) {
        if (engine_session_new(&m->sessions[empty], m->e, 0, err, errlen)) return -1;
        const engine_info *info = engine_get_info(m->e);
        m->bytes += info->kv_bytes_per_position * (uint64_t)engine_session_n_ctx(m->sessions[empty]);
        best = empty;
    }
    if (best < 0) err_set(err, errlen, "no free session (more active requests than --parallel)");
    return best;
}

/* ---- the scheduler ------------------------------------------------------- */

/* The model's input for the request: its chat template applied, or the prompt as is. */
static char *prompt_text(engine *e, const api_request *r, char *err, size_t errlen)
{
    char *text = NULL;
    if (r->n_msgs > 0) {
        if (engine_chat_format(e, r->msgs, r->n_msgs, 1, &text, err, errlen)) return NULL;
        return text;
    }
    if (r->ep == API_OLLAMA_GENERATE && !r->raw) {
        engine_chat_msg msgs[2];
        int n = 0;
        if (r->system) msgs[n++] = (engine_chat_msg){"system", r->system};
        msgs[n++] = (engine_chat_msg){"user", r->prompt};
        if (engine_chat_format(e, msgs, n, 1, &text, err, errlen)) return NULL;
        return text;
    }
    text = strdup(r->prompt);
    if (!text) err_set(err, errlen, "out of memory");
    return text;
}

/* Loads the model, builds the prompt, takes a session and starts; 0 or -1 (job failed). */
static int job_begin(server *srv, job *j)
{
    char err[512];
    double t0 = engine_now_s();
    int had = find_loaded(srv, j->model_name, j->model_path) != NULL;
    loaded_model *m = load_model(srv, j->model_name, j->model_path, err, sizeof err);
    if (!m) {
        char msg[700];
        snprintf(msg, sizeof msg, "cannot load model '%s': %s", j->model_name, err);
        job_fail(j, 500, msg);
        return -1;
    }
    j->load_s = had ? 0 : engine_now_s() - t0;
    char *text = prompt_text(m->e, &j->req, err, sizeof err);
    int n = text ? engine_tokenize_alloc(m->e, text, strlen(text), engine_get_info(m->e)->add_bos, 1, &j->tokens) : -1;
    if (text && n <= 0) err_set(err, sizeof err, n == 0 ? "the prompt gives no tokens" : "out of memory");
    free(text);
    if (n <= 0) {
        job_fail(j, 400, err);
        return -1;
    }
    int slot = pick_session(srv, m, j->tokens, n, err, sizeof err);
    if (slot < 0) {
        job_fail(j, 503, err);
        return -1;
    }
    engine_session *s = m->sessions[slot];
    if (n >= engine_session_n_ctx(s)) {
        err_set(err, sizeof err, "the prompt has %d tokens; the context holds %d", n, engine_session_n_ctx(s));
        job_fail(j, 400, err);
        return -1;
    }
    engine_sampling sp = j->req.sampling;
    sp.time_budget_s = srv->o.time_limit;
    if (engine_start(s, j->tokens, n, &sp, err, sizeof err)) {
        job_fail(j, 500, err);
        return -1;
    }
    m->session_busy[slot] = 1;
    m->n_active++;
    m->last_used = engine_now_s();
    j->m = m;
    j->slot = slot;
    pthread_mutex_lock(&j->mu);
    j->state = JOB_RUNNING;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return 0;
}

/* Adds generated text and sends what can no longer be part of a stop sequence. */
static int on_token(int32_t id, const char *text, void *user)
{
    (void)id;
    job *j = user;
    size_t n = strlen(text);
    if (j->text_len + n + 1 > j->text_cap) {
        size_t cap = (j->text_cap + n + 1) * 2;
        char *p = realloc(j->text, cap);
        if (!p) return 1;
        j->text = p;
        j->text_cap = cap;
    }
    memcpy(j->text + j->text_len, text, n + 1);
    j->text_len += n;
    int hit = 0;
    size_t ok = api_stop_scan(j->text, j->text_len, j->text_sent, j->req.stop, j->req.n_stop, id < 0, &hit);
    if (ok > j->text_sent) job_push_piece(j, j->text + j->text_sent, ok - j->text_sent);
    if (ok > j->text_sent) j->text_sent = ok;
    if (hit) {
        j->stopped_by_sequence = 1;
        j->text_len = ok; /* what follows the stop sequence is never sent */
        return 1;
    }
    return atomic_load(&j->cancelled);
}

static void job_end(server *srv, job *j)
{
    if (j->m) {
        j->m->session_busy[j->slot] = 0;
        j->m->n_active--;
        j->m->last_used = engine_now_s();
    }
    (void)srv;
}

/* The log line of a generation whose client left, with the tokens it made. */
static void log_gone(job *j)
{
    if (!j->m) return;
    engine_stats st;
    engine_session_stats(j->m->sessions[j->slot], &st);
    pthread_mutex_lock(&j->mu);
    j->res.completion_tokens = st.generated_tokens;
    pthread_mutex_unlock(&j->mu);
    log_note("prbot serve: %s: the client went away; stopped after %d tokens", j->id, st.generated_tokens);
}

/* One step of an active job; returns 1 when the job is over. */
static int job_step(server *srv, job *j)
{
    if (atomic_load(&j->cancelled)) {
        job_fail(j, 499, "the client went away");
        log_gone(j);
        return 1;
    }
    if (!j->m) return job_begin(srv, j) < 0;
    char err[512];
    engine_session *s = j->m->sessions[j->slot];
    int rc = engine_step(s, on_token, j, err, sizeof err);
    if (rc == 1) return 0;
    if (rc < 0) {
        job_fail(j, 500, err);
        return 1;
    }
    if (atomic_load(&j->cancelled)) { /* on_token stopped it */
        job_fail(j, 499, "the client went away");
        log_gone(j);
        return 1;
    }
    if (!j->stopped_by_sequence && j->text_sent < j->text_len) /* the held-back tail */
        job_push_piece(j, j->text + j->text_sent, j->text_len - j->text_sent);
    engine_stats st;
    engine_session_stats(s, &st);
    pthread_mutex_lock(&j->mu);
    j->res.prompt_tokens = st.prompt_tokens;
    j->res.cached_tokens = st.cached_tokens;
    j->res.completion_tokens = st.generated_tokens;
    j->res.finish_reason = j->stopped_by_sequence ? "stop" : api_finish_reason(st.stop_reason);
    j->res.load_s = j->load_s;
    j->res.prefill_s = st.prefill_s;
    j->res.decode_s = st.decode_s;
    j->res.total_s = engine_now_s() - j->t_queued;
    j->state = JOB_DONE;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return 1;
}

static void *scheduler_main(void *arg)
{
    server *srv = arg;
    char err[512];
    if (!load_model(srv, srv->default_name, srv->o.model_path, err, sizeof err)) {
        log_note("prbot serve: cannot load %s: %s", srv->o.model_path, err);
        atomic_store(&srv->ready, -1);
    } else {
        atomic_store(&srv->ready, 1);
    }
    pthread_mutex_lock(&srv->mu);
    for (;;) {
        while (srv->n_active < srv->o.parallel && srv->wait_head) {
            job *j = srv->wait_head;
            srv->wait_head = j->next;
            if (!srv->wait_head) srv->wait_tail = NULL;
            srv->n_waiting--;
            srv->active[srv->n_active++] = j;
        }
        if (srv->n_active == 0) {
            if (atomic_load(&srv->stopping)) break;
            pthread_cond_wait(&srv->cv, &srv->mu);
            continue;
        }
        int i = srv->rr++ % srv->n_active;
        job *j = srv->active[i];
        pthread_mutex_unlock(&srv->mu);
        if (atomic_load(&srv->stopping)) atomic_store(&j->cancelled, 1);
        int over = job_step(srv, j);
        pthread_mutex_lock(&srv->mu);
        if (over) {
            job_end(srv, j);
            srv->active[i] = srv->active[--srv->n_active];
            job_release(j);
        }
    }
    pthread_mutex_unlock(&srv->mu);
    return NULL;
}

/* Queues a job; 0, or 503 when --parallel are running and --queue are waiting. */
static int enqueue(server *srv, job *j)
{
    pthread_mutex_lock(&srv->mu);
    if (atomic_load(&srv->stopping) || srv->n_active + srv->n_waiting >= srv->o.parallel + srv->o.queue) {
        pthread_mutex_unlock(&srv->mu);
        return 503;
    }
    if (srv->wait_tail) srv->wait_tail->next = j;
    else srv->wait_head = j;
    srv->wait_tail = j;
    srv->n_waiting++;
    pthread_cond_signal(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    return 0;
}

/* ---- connections ------------------------------------------------------------ */

typedef struct {
    server *srv;
    api_endpoint ep;
    int route_status;
    textbuf body;
    int too_large;
    double t0;
    int status, tokens;
    char method[8], path[128];
    int fd;
    job *job;
    textbuf out; /* streamed bytes not yet handed to MHD */
    size_t out_off;
    int pieces_sent, ended;
    /* /api/pull */
    pid_t pull_pid;
    int pull_err_fd, pull_out_fd;
    char pull_name[REGISTRY_NAME_MAX + 1];
} conn;

/* 1 when the client closed its end (EOF or error on the socket). */
static int client_gone(int fd)
{
    if (fd < 0) return 0;
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return 1;
    char c;
    return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* Waits, watching the socket, until the job has left state `from` or (when
 * pieces >= 0) has more than that many pieces; 0, or -1 when the client left. */
static int wait_job(conn *cc, job *j, job_state from, int pieces)
{
    pthread_mutex_lock(&j->mu);
    while (j->state == from && (pieces < 0 || j->n_pieces <= pieces)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += WAIT_SLICE_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
        if (j->state == from && (pieces < 0 || j->n_pieces <= pieces) && client_gone(cc->fd)) {
            atomic_store(&j->cancelled, 1);
            pthread_mutex_unlock(&j->mu);
            return -1;
        }
    }
    pthread_mutex_unlock(&j->mu);
    return 0;
}

static enum MHD_Result respond(struct MHD_Connection *c, conn *cc, int status, const char *content_type, char *body)
{
    if (!body) body = strdup("{\"error\": \"out of memory\"}");
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", content_type);
    if (status == 503) MHD_add_response_header(r, "Retry-After", "1");
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    cc->status = status;
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result respond_error(struct MHD_Connection *c, conn *cc, int status, const char *msg)
{
    return respond(c, cc, status, "application/json", api_error_body(cc->ep, status, msg));
}

static enum MHD_Result respond_json(struct MHD_Connection *c, conn *cc, int status, json_t *obj)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    return respond(c, cc, status, "application/json", text);
}

static void iso_time(time_t t, char *out, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *tag_entry(const char *name, const char *path)
{
    struct stat st;
    int ok = stat(path, &st) == 0;
    char when[32];
    iso_time(ok ? st.st_mtime : 0, when, sizeof when);
    return json_pack("{s:s,s:s,s:s,s:I,s:s,s:{s:s,s:s}}", "name", name, "model", name, "modified_at", when, "size",
                     (json_int_t)(ok ? st.st_size : 0), "digest", "", "details", "format", "gguf", "family", "");
}

static enum MHD_Result list_models(struct MHD_Connection *c, conn *cc)
{
    server *srv = cc->srv;
    json_t *list = json_array();
    pthread_mutex_lock(&srv->mu);
    for (int i = -1; i < srv->reg.n; i++) {
        const char *name = i < 0 ? srv->default_name : srv->reg.items[i].name;
        const char *path = i < 0 ? srv->o.model_path : srv->reg.items[i].path;
        if (i >= 0 && !strcmp(name, srv->default_name)) continue;
        json_array_append_new(list, cc->ep == API_OPENAI_MODELS
                                        ? json_pack("{s:s,s:s,s:i,s:s}", "id", name, "object", "model", "created", 0,
                                                    "owned_by", "prbot")
                                        : tag_entry(name, path));
    }
    pthread_mutex_unlock(&srv->mu);
    if (cc->ep == API_OPENAI_MODELS) return respond_json(c, cc, 200, json_pack("{s:s,s:o}", "object", "list", "data", list));
    return respond_json(c, cc, 200, json_pack("{s:o}", "models", list));
}

/* Opens a GGUF file's vocabulary only (fast: no weights): a file this engine can read, or NULL. */
static engine *open_vocab(const char *path, char *err, size_t errlen)
{
    engine_params vp = {.vocab_only = 1};
    engine *e;
    return engine_open(&e, path, &vp, err, errlen) ? NULL : e;
}

static enum MHD_Result show_model(struct MHD_Connection *c, conn *cc, const api_request *r)
{
    server *srv = cc->srv;
    char name[REGISTRY_NAME_MAX + 1], path[4096], err[512];
    pthread_mutex_lock(&srv->mu);
    int known = resolve_model(srv, r->name, name, path, sizeof path) == 0;
    pthread_mutex_unlock(&srv->mu);
    if (!known) return respond_error(c, cc, 404, "model not found; GET /api/tags lists the models");
    engine *e = open_vocab(path, err, sizeof err);
    if (!e) return respond_error(c, cc, 500, err);
    const engine_info *info = engine_get_info(e);
    json_t *o = json_pack("{s:s,s:s,s:s,s:{s:s,s:s,s:s},s:{s:s,s:i,s:I,s:b}}", "modelfile", "", "parameters", "",
                          "template", "", "details", "format", "gguf", "family", info->arch, "quantization_level",
                          info->file_type, "model_info", "general.name", info->name, "vocab_size", info->n_vocab,
                          "file_bytes", (json_int_t)info->file_bytes, "has_chat_template", info->has_chat_template);
    engine_close(e);
    return respond_json(c, cc, 200, o);
}

static enum MHD_Result create_model(struct MHD_Connection *c, conn *cc, const api_request *r)
{
    server *srv = cc->srv;
    char err[512];
    if (!registry_name_valid(r->name) || !strcmp(r->name, srv->default_name)) {
        err_set(err, sizeof err, "invalid model name '%.140s': use at most %d of A-Z a-z 0-9 . _ : / -, not the default model's name",
                 r->name, REGISTRY_NAME_MAX);
        return respond_error(c, cc, 400, err);
    }
    char *real = realpath(r->path, NULL);
    if (!real) {
        err_set(err, sizeof err, "modelpath '%.300s': %s", r->path, strerror(errno));
        return respond_error(c, cc, 400, err);
    }
    engine *e = open_vocab(real, err, sizeof err);
    if (!e) {
        free(real);
        return respond_error(c, cc, 400, err);
    }
    engine_close(e);
    pthread_mutex_lock(&srv->mu);
    int rc = registry_set(&srv->reg, r->name, real, err, sizeof err);
    pthread_mutex_unlock(&srv->mu);
    free(real);
    if (rc) return respond_error(c, cc, 500, err);
    return respond_json(c, cc, 200, json_pack("{s:s}", "status", "success"));
}

static enum MHD_Result delete_model(struct MHD_Connection *c, conn *cc, const api_request *r)
{
    server *srv = cc->srv;
    char err[512] = "";
    pthread_mutex_lock(&srv->mu);
    int rc = registry_remove(&srv->reg, r->name, err, sizeof err);
    pthread_mutex_unlock(&srv->mu);
    if (rc == 1) {
        err_set(err, sizeof err, "model '%.140s' not found", r->name);
        return respond_error(c, cc, 404, err);
    }
    if (rc < 0) return respond_error(c, cc, 500, err);
    return respond_json(c, cc, 200, json_object());
}

/* ---- streaming ---------------------------------------------------------------- */

/* Moves whatever the job has produced since the last call into cc->out. */
static void drain_job(conn *cc)
{
    job *j = cc->job;
    pthread_mutex_lock(&j->mu);
    for (; cc->pieces_sent < j->n_pieces; cc->pieces_sent++) {
        char *ev = api_stream_delta(&j->fmt, j->pieces[cc->pieces_sent], cc->pieces_sent);
        textbuf_puts(&cc->out, ev ? ev : "");
        free(ev);
        cc->tokens++;
    }
    if (j->state == JOB_DONE && !cc->ended) {
        char *ev = j->err[0] ? api_stream_error(&j->fmt, j->err) : api_stream_end(&j->fmt, &j->res);
        textbuf_puts(&cc->out, ev ? ev : "");
        free(ev);
        cc->tokens = j->res.completion_tokens;
        cc->ended = 1;
    }
    pthread_mutex_unlock(&j->mu);
}

static ssize_t copy_out(conn *cc, char *buf, size_t max)
{
    size_t n = cc->out.len - cc->out_off;
    if (n > max) n = max;
    memcpy(buf, cc->out.data + cc->out_off, n);
    cc->out_off += n;
    if (cc->out_off == cc->out.len) cc->out.len = cc->out_off = 0;
    return (ssize_t)n;
}

static ssize_t read_stream(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    conn *cc = cls;
    if (cc->out_off < cc->out.len) return copy_out(cc, buf, max);
    if (cc->ended) return MHD_CONTENT_READER_END_OF_STREAM;
    if (wait_job(cc, cc->job, JOB_RUNNING, cc->pieces_sent) < 0) {
        cc->status = 499;
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    drain_job(cc);
    if (cc->out.failed) return MHD_CONTENT_READER_END_WITH_ERROR;
    if (cc->out.len == 0) return cc->ended ? MHD_CONTENT_READER_END_OF_STREAM : 0;
    return copy_out(cc, buf, max);
}

static enum MHD_Result generate(struct MHD_Connection *c, conn *cc, api_request *r)
{
    server *srv = cc->srv;
    job *j = job_new();
    if (!j) {
        api_request_free(r);
        return respond_error(c, cc, 500, "out of memory");
    }
    j->req = *r;
    memset(r, 0, sizeof *r);
    pthread_mutex_lock(&srv->mu);
    int known = resolve_model(srv, j->req.model, j->model_name, j->model_path, sizeof j->model_path) == 0;
    pthread_mutex_unlock(&srv->mu);
    if (!known) {
        char msg[300];
        snprintf(msg, sizeof msg, "model '%.140s' not found; GET /v1/models or /api/tags lists the models",
                 j->req.model);
        j->refs = 1;
        job_release(j);
        return respond_error(c, cc, 404, msg);
    }
    snprintf(j->id, sizeof j->id, "%s-%ld", cc->ep == API_OPENAI_CHAT ? "chatcmpl" : "cmpl",
             atomic_fetch_add(&srv->next_id, 1));
    j->fmt = (api_stream){cc->ep, j->id, j->model_name, (long long)time(NULL), j->req.include_usage};
    j->t_queued = engine_now_s();
    if (enqueue(srv, j)) {
        j->refs = 1;
        job_release(j);
        return respond_error(c, cc, 503, "the server is busy: every slot and queue place is taken; retry later");
    }
    cc->job = j;
    /* Headers wait until the job has started, so an error in its prompt or model still gets its status. */
    if (wait_job(cc, j, JOB_QUEUED, -1) < 0) {
        cc->status = 499;
        return MHD_NO;
    }
    pthread_mutex_lock(&j->mu);
    int failed_early = j->state == JOB_DONE && j->err[0] && j->status != 200;
    pthread_mutex_unlock(&j->mu);
    if (failed_early) return respond_error(c, cc, j->status, j->err);
    if (j->req.stream) {
        char *begin = api_stream_begin(&j->fmt);
        textbuf_puts(&cc->out, begin ? begin : "");
        free(begin);
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, read_stream, cc, NULL);
        if (!resp) return MHD_NO;
        MHD_add_response_header(resp, "Content-Type", api_stream_content_type(cc->ep));
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
        cc->status = 200;
        enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        return rc;
    }
    if (wait_job(cc, j, JOB_RUNNING, -1) < 0) {
        cc->status = 499;
        return MHD_NO;
    }
    if (j->err[0]) return respond_error(c, cc, 500, j->err);
    textbuf text = {0};
    for (int i = 0; i < j->n_pieces; i++) textbuf_puts(&text, j->pieces[i]);
    cc->tokens = j->res.completion_tokens;
    char *body = api_complete_body(&j->fmt, text.data ? text.data : "", &j->res);
    textbuf_free(&text);
    return respond(c, cc, 200, "application/json", body);
}

/* ---- /api/pull: `prbot model pull` in a child process, its progress streamed ---- */

/* {"status": line} and a newline; malloc'ed. */
static char *dump_line_status(const char *line)
{
    json_t *o = json_pack("{s:s%}", "status", line, strlen(line));
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(o);
    if (!text) return NULL;
    textbuf b = {0};
    textbuf_printf(&b, "%s\n", text);
    free(text);
    return textbuf_take(&b);
}

static ssize_t read_pull(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    conn *cc = cls;
    if (cc->out_off < cc->out.len) return copy_out(cc, buf, max);
    if (cc->ended) return MHD_CONTENT_READER_END_OF_STREAM;
    char line[1024];
    size_t n = 0;
    for (;;) { /* one line of the child's stderr, or its end */
        ssize_t got = read(cc->pull_err_fd, line + n, 1);
        if (got == 1 && line[n] != '\n' && n + 1 < sizeof line) {
            n++;
            continue;
        }
        if (got == 1 && n == 0) continue; /* an empty line */
        if (got == 1 || n > 0) {
            line[n] = 0;
            char *ev = dump_line_status(line);
            textbuf_puts(&cc->out, ev ? ev : "");
            free(ev);
            return copy_out(cc, buf, max);
        }
        break;
    }
    /* stderr closed: the child is done */
    char path[4096];
    ssize_t got = read(cc->pull_out_fd, path, sizeof path - 1);
    path[got > 0 ? got : 0] = 0;
    path[strcspn(path, "\n")] = 0;
    int status = 0;
    waitpid(cc->pull_pid, &status, 0);
    cc->pull_pid = 0;
    char err[512] = "";
    char *ev = NULL;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && path[0]) {
        char name[REGISTRY_NAME_MAX + 1];
        name_of_path(path, name, sizeof name);
        pthread_mutex_lock(&cc->srv->mu);
        int rc = registry_set(&cc->srv->reg, name, path, err, sizeof err);
        pthread_mutex_unlock(&cc->srv->mu);
        json_t *o = rc ? json_pack("{s:s}", "error", err) : json_pack("{s:s,s:s,s:s}", "status", "success", "name", name, "path", path);
        ev = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        cc->status = rc ? 500 : 200;
    } else {
        json_t *o = json_pack("{s:s}", "error", "prbot model pull failed (its messages are in the lines above)");
        ev = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        cc->status = 502;
    }
    textbuf_printf(&cc->out, "%s\n", ev ? ev : "{}");
    free(ev);
    cc->ended = 1;
    return copy_out(cc, buf, max);
}

static enum MHD_Result pull_model(struct MHD_Connection *c, conn *cc, const api_request *r)
{
    server *srv = cc->srv;
    if (strncmp(r->name, "https://", 8) && strncmp(r->name, "http://", 7))
        return respond_error(c, cc, 400, "'name' must be the URL of a GGUF file (http:// or https://)");
    int err_pipe[2], out_pipe[2];
    if (pipe2(err_pipe, O_CLOEXEC)) return respond_error(c, cc, 500, strerror(errno));
    if (pipe2(out_pipe, O_CLOEXEC)) {
        close(err_pipe[0]);
        close(err_pipe[1]);
        return respond_error(c, cc, 500, strerror(errno));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
    char *argv[10];
    int n = 0;
    argv[n++] = srv->self_exe;
    argv[n++] = "model";
    argv[n++] = "pull";
    argv[n++] = r->name;
    argv[n++] = "--cache";
    argv[n++] = (char *)srv->o.models_dir;
    if (r->sha256) {
        argv[n++] = "--sha256";
        argv[n++] = r->sha256;
    }
    argv[n] = NULL;
    pid_t pid;
    int rc = posix_spawn(&pid, srv->self_exe, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(err_pipe[1]);
    close(out_pipe[1]);
    if (rc) {
        close(err_pipe[0]);
        close(out_pipe[0]);
        return respond_error(c, cc, 500, strerror(rc));
    }
    cc->pull_pid = pid;
    cc->pull_err_fd = err_pipe[0];
    cc->pull_out_fd = out_pipe[0];
    char *first = dump_line_status("pulling manifest");
    textbuf_puts(&cc->out, first ? first : "");
    free(first);
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, read_pull, cc, NULL);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/x-ndjson");
    cc->status = 200;
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ---- the request handler ------------------------------------------------------- */

static enum MHD_Result handle(struct MHD_Connection *c, conn *cc)
{
    server *srv = cc->srv;
    if (cc->route_status != 200) {
        char msg[200];
        snprintf(msg, sizeof msg, cc->route_status == 405 ? "method %s not allowed on %s" : "no endpoint %s %s",
                 cc->method, cc->path);
        if (!strncmp(cc->path, "/v1/", 4)) cc->ep = API_OPENAI_MODELS; /* errors in the OpenAI shape there */
        return respond_error(c, cc, cc->route_status, msg);
    }
    if (srv->o.api_key && cc->ep != API_HEALTH &&
        !api_auth_ok(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"), srv->o.api_key))
        return respond_error(c, cc, 401, "missing or wrong API key: send 'Authorization: Bearer KEY'");
    if (cc->too_large) {
        char msg[120];
        snprintf(msg, sizeof msg, "request body over %ld bytes", srv->o.max_body);
        return respond_error(c, cc, 413, msg);
    }
    int ready = atomic_load(&srv->ready);
    if (cc->ep == API_HEALTH)
        return respond_json(c, cc, ready == 1 ? 200 : 503,
                            json_pack("{s:s}", "status", ready == 1 ? "ok" : ready == 0 ? "loading" : "error"));
    if (cc->ep == API_OLLAMA_VERSION) return respond_json(c, cc, 200, json_pack("{s:s}", "version", "0.1.0-prbot"));
    if (cc->ep == API_OPENAI_MODELS || cc->ep == API_OLLAMA_TAGS) return list_models(c, cc);
    api_request r;
    char err[512];
    int st = api_parse(cc->ep, cc->body.data, cc->body.len, &srv->defaults, &r, err, sizeof err);
    if (st) {
        api_request_free(&r);
        return respond_error(c, cc, st, err);
    }
    enum MHD_Result rc;
    switch (cc->ep) {
    case API_OLLAMA_SHOW: rc = show_model(c, cc, &r); break;
    case API_OLLAMA_CREATE: rc = create_model(c, cc, &r); break;
    case API_OLLAMA_DELETE: rc = delete_model(c, cc, &r); break;
    case API_OLLAMA_PULL: rc = pull_model(c, cc, &r); break;
    default:
        if (ready != 1 && ready != 0) {
            api_request_free(&r);
            return respond_error(c, cc, 503, "the default model failed to load; see the server's log");
        }
        return generate(c, cc, &r); /* owns r */
    }
    api_request_free(&r);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    server *srv = cls;
    conn *cc = *con_cls;
    if (!cc) {
        if (!(cc = calloc(1, sizeof *cc))) return MHD_NO;
        cc->srv = srv;
        cc->t0 = engine_now_s();
        cc->fd = -1;
        cc->pull_err_fd = cc->pull_out_fd = -1;
        snprintf(cc->method, sizeof cc->method, "%s", method);
        snprintf(cc->path, sizeof cc->path, "%s", url);
        cc->ep = api_route(method, url, &cc->route_status);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci) cc->fd = ci->connect_fd;
        *con_cls = cc;
        return MHD_YES;
    }
    if (*upload_size) {
        if (cc->body.len + *upload_size > (size_t)srv->o.max_body) cc->too_large = 1;
        if (!cc->too_large) textbuf_add(&cc->body, upload_data, *upload_size);
        *upload_size = 0; /* consumed (or dropped, past the limit) */
        return MHD_YES;
    }
    if (cc->body.failed) return respond_error(c, cc, 500, "out of memory reading the request body");
    return handle(c, cc);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)c;
    conn *cc = *con_cls;
    if (!cc) return;
    if (why != MHD_REQUEST_TERMINATED_COMPLETED_OK && cc->status == 200) cc->status = 499; /* the client left */
    if (cc->job) {
        atomic_store(&cc->job->cancelled, 1);
        pthread_mutex_lock(&cc->job->mu);
        if (cc->job->state == JOB_DONE) cc->tokens = cc->job->res.completion_tokens;
        pthread_mutex_unlock(&cc->job->mu);
        job_release(cc->job);
    }
    if (cc->pull_pid > 0) {
        kill(cc->pull_pid, SIGTERM);
        waitpid(cc->pull_pid, NULL, 0);
    }
    if (cc->pull_err_fd >= 0) close(cc->pull_err_fd);
    if (cc->pull_out_fd >= 0) close(cc->pull_out_fd);
    log_note("prbot serve: %s %s %d tokens=%d ms=%.0f", cc->method, cc->path, cc->status, cc->tokens,
            (engine_now_s() - cc->t0) * 1000);
    textbuf_free(&cc->body);
    textbuf_free(&cc->out);
    free(cc);
    *con_cls = NULL;
}

/* ---- the command ----------------------------------------------------------------- */

static uint64_t default_memory_limit(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size / 2 : (uint64_t)4 << 30;
}

int server_start(server **out, const serve_options *o, char *err, size_t errlen)
{
    *out = NULL;
    server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        err_set(err, errlen, "out of memory");
        return -1;
    }
    engine *check = open_vocab(o->model_path, err, errlen); /* a bad path fails here, not in the background */
    if (!check) {
        free(srv);
        return -1;
    }
    engine_close(check);
    srv->o = *o;
    if (srv->o.parallel < 1) srv->o.parallel = 1;
    if (srv->o.queue < 0) srv->o.queue = 0;
    srv->memory_limit = o->memory_mb > 0 ? (uint64_t)o->memory_mb << 20 : default_memory_limit();
    engine_sampling_defaults(&srv->defaults);
    srv->defaults.speculate = o->speculate;
    atomic_init(&srv->next_id, 1);
    pthread_mutex_init(&srv->mu, NULL);
    pthread_cond_init(&srv->cv, NULL);
    name_of_path(o->model_path, srv->default_name, sizeof srv->default_name);
    ssize_t n = readlink("/proc/self/exe", srv->self_exe, sizeof srv->self_exe - 1);
    srv->self_exe[n > 0 ? n : 0] = 0;
    srv->active = calloc((size_t)srv->o.parallel, sizeof *srv->active);
    if (!srv->active || registry_load(&srv->reg, o->models_dir, err, errlen)) {
        if (srv->active) err_set(err, errlen, "out of memory");
        server_stop(srv);
        return -1;
    }
    if (pthread_create(&srv->scheduler, NULL, scheduler_main, srv)) {
        err_set(err, errlen, "cannot start the scheduler thread");
        free(srv->active);
        registry_free(&srv->reg);
        free(srv);
        return -1;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    if (inet_pton(AF_INET, o->host, &addr.sin_addr) != 1) {
        err_set(err, errlen, "--host must be an IPv4 address such as 127.0.0.1 (got '%.100s')", o->host);
        server_stop(srv);
        return -1;
    }
    unsigned limit = (unsigned)(srv->o.parallel + srv->o.queue + CONNECTIONS_EXTRA);
    srv->daemon = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD,
                                   0, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                   MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_CONNECTION_TIMEOUT, 300u,
                                   MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_END);
    if (!srv->daemon) {
        err_set(err, errlen, "cannot listen on %s:%d (in use, or not an address of this machine)", o->host, o->port);
        server_stop(srv);
        return -1;
    }
    *out = srv;
    return 0;
}

int server_port(const server *srv)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

void server_stop(server *srv)
{
    if (!srv) return;
    pthread_mutex_lock(&srv->mu);
    atomic_store(&srv->stopping, 1);
    for (job *j = srv->wait_head; j; j = j->next) atomic_store(&j->cancelled, 1);
    for (int i = 0; i < srv->n_active; i++) atomic_store(&srv->active[i]->cancelled, 1);
    pthread_cond_broadcast(&srv->cv);
    /* queued jobs are failed so their connections stop waiting */
    while (srv->wait_head) {
        job *j = srv->wait_head;
        srv->wait_head = j->next;
        job_fail(j, 503, "the server is shutting down");
        job_release(j);
    }
    srv->wait_tail = NULL;
    srv->n_waiting = 0;
    pthread_mutex_unlock(&srv->mu);
    if (srv->scheduler) pthread_join(srv->scheduler, NULL);
    if (srv->daemon) MHD_stop_daemon(srv->daemon);
    while (srv->n_models > 0) unload(srv, srv->n_models - 1);
    registry_free(&srv->reg);
    free(srv->active);
    pthread_cond_destroy(&srv->cv);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
}
