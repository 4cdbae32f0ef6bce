/*
 * model_pull.c - `prbot model pull URL`: download a model into the cache,
 * resumably and verified.
 *
 * The file is written to CACHE/NAME.part. If a .part already exists, the
 * request asks for the rest (`Range: bytes=N-`): a 206 answer whose
 * Content-Range starts at N is appended; a 200 answer means the server
 * ignored the range, so the .part is truncated and the download restarts.
 * Dropped connections are resumed the same way, a few times within one run
 * (PRBOT_DOWNLOAD_ATTEMPTS, default 4), and the .part survives for the next
 * run otherwise.
 *
 * The SHA-256 is computed while the bytes arrive (after hashing the existing
 * .part prefix on a resume) and compared with --sha256, or with the sha256
 * Hugging Face advertises for LFS files in `X-Linked-Etag` (or a 64-hex
 * `ETag`). Only a verified file is renamed over CACHE/NAME (atomic on one
 * file system); a mismatch deletes the .part and leaves any cached file
 * untouched. The final path is the only thing printed on stdout, so
 * `model=$(prbot model pull URL)` works in scripts.
 *
 * Progress goes to stderr: a bar redrawn in place on a terminal, and in CI
 * (stderr not a terminal) one line every 5 seconds or 10%.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../engine/engine.h"
#include "cli_options.h"
#include "commands.h"
#include "errors.h"
#include "http.h"
#include "registry.h"
#include "sha256.h"

typedef struct {
    const char *url, *sha256, *cache, *output;
    int quiet;
} pull_options;

/* State of one download run (possibly several HTTP transfers). */
typedef struct {
    CURL *curl;
    FILE *out;
    sha256_ctx sha;
    long long have;          /* bytes in the .part file (and hashed) */
    long long transfer_from; /* offset the current transfer started at */
    long long total;         /* full size when known, else -1 */
    long status;             /* status line of the latest response */
    int body_started;        /* the current transfer's body has begun */
    int body_rejected;       /* the current response is not file content */
    int write_failed;
    char range_start[32];    /* first number of this response's Content-Range */
    char advertised_sha[65]; /* from X-Linked-Etag / ETag, "" if none */
    int tty;
    double started, last_report;
    int last_report_decile;
    char err[512];
} download;

static const char pull_usage[] =
    "usage: prbot model pull URL [--sha256 HEX] [--cache DIR] [--output NAME] [--quiet]\n"
    "\n"
    "Downloads a GGUF model into the cache (resuming an interrupted download),\n"
    "verifies its SHA-256 and prints the cached file's path on stdout.\n"
    "\n"
    "  --sha256 HEX    expected SHA-256 (64 hex digits); without it, the sha256 that\n"
    "                  Hugging Face sends for LFS files (X-Linked-Etag) is used if present\n"
    "  --cache DIR     cache directory (default: $PRBOT_CACHE, else\n"
    "                  ${XDG_CACHE_HOME:-$HOME/.cache}/prbot)\n"
    "  --output NAME   file name in the cache (default: the URL's last path segment)\n"
    "  --quiet         no progress output\n"
    "\n"
    "A cached file that matches --sha256 is not downloaded again; a checksum mismatch\n"
    "deletes only the partial download, never an already cached file.\n";

static void sleep_seconds(double s)
{
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* ------------------------------------------------------------ paths */

static void lowercase(char *s)
{
    for (; *s; s++) *s = (char)tolower((unsigned char)*s);
}

/* 64 hex digits in either case (a user may paste an upper-case checksum). */
static int is_hex64(const char *s)
{
    char low[65];
    if (strlen(s) != 64) return 0;
    memcpy(low, s, sizeof low);
    lowercase(low);
    return hex_is(low, 64);
}

/* mkdir -p */
static int make_dirs(const char *dir, char *err, size_t errlen)
{
    char path[1024];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1;; p++) {
        if (*p == '/' || !*p) {
            char saved = *p;
            *p = 0;
            if (mkdir(path, 0755) && errno != EEXIST) {
                err_set(err, errlen, "cannot create cache directory %.400s: %s", path, strerror(errno));
                return -1;
            }
            *p = saved;
            if (!saved) break;
        }
    }
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
        err_set(err, errlen, "cache directory %.400s is not a directory", dir);
        return -1;
    }
    return 0;
}

/* The URL's last path segment, without query or fragment. */
static int name_from_url(const char *url, char *out, size_t cap)
{
    const char *start = strstr(url, "://");
    start = start ? start + 3 : url;
    size_t len = strcspn(start, "?#");
    const char *slash = NULL;
    for (const char *p = start; p < start + len; p++)
        if (*p == '/') slash = p;
    if (!slash || slash + 1 >= start + len) return -1;
    snprintf(out, cap, "%.*s", (int)(start + len - slash - 1), slash + 1);
    return 0;
}

static int name_valid(const char *name)
{
    return *name && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..") && strlen(name) < 200;
}

/* ------------------------------------------------------------ progress */

static void format_bytes(double b, char *out, size_t cap)
{
    if (b >= 1e9)
        snprintf(out, cap, "%.2f GB", b / 1e9);
    else if (b >= 1e6)
        snprintf(out, cap, "%.1f MB", b / 1e6);
    else
        snprintf(out, cap, "%.0f kB", b / 1e3);
}

static void report_progress(download *d, int final)
{
    double t = engine_now_s();
    double elapsed = t - d->started;
    int decile = d->total > 0 ? (int)(d->have * 10 / d->total) : -1;
    if (!final) {
        if (d->tty && t - d->last_report < 0.2) return;
        if (!d->tty && t - d->last_report < 5.0 && decile == d->last_report_decile) return;
    }
    d->last_report = t;
    d->last_report_decile = decile;
    char have[32], total[32], speed[32];
    format_bytes((double)d->have, have, sizeof have);
    format_bytes(d->total > 0 ? (double)d->total : 0, total, sizeof total);
    format_bytes(elapsed > 0 ? (double)(d->have - d->transfer_from) / elapsed : 0, speed, sizeof speed);
    if (d->tty) {
        int pct = d->total > 0 ? (int)(d->have * 100 / d->total) : 0;
        int filled = pct * 30 / 100;
        fprintf(stderr, "\r[%.*s%*s] %3d%% %s / %s  %s/s ", filled, "##############################", 30 - filled,
                "", pct, have, d->total > 0 ? total : "?", speed);
        if (final) fputc('\n', stderr);
    } else if (d->total > 0) {
        fprintf(stderr, "prbot model pull: %s of %s (%d%%), %s/s\n", have, total, (int)(d->have * 100 / d->total),
                speed);
    } else {
        fprintf(stderr, "prbot model pull: %s, %s/s\n", have, speed);
    }
}

/* ------------------------------------------------------------ curl callbacks */

/* Copies a quoted/weak ETag value into out when it is 64 hex digits. */
static void capture_sha_header(const char *value, char *out)
{
    char v[128];
    snprintf(v, sizeof v, "%s", value);
    char *p = v;
    if (!strncmp(p, "W/", 2)) p += 2;
    if (*p == '"') p++;
    size_t n = strcspn(p, "\"");
    p[n] = 0;
    if (is_hex64(p)) {
        memcpy(out, p, 65);
        lowercase(out);
    }
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *user)
{
    download *d = user;
    size_t n = size * nmemb;
    char line[512];
    snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line - 1 ? n : sizeof line - 1), ptr);
    line[strcspn(line, "\r\n")] = 0;
    if (!strncmp(line, "HTTP/", 5)) {
        const char *sp = strchr(line, ' ');
        d->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        d->range_start[0] = 0;
        return n;
    }
    char *colon = strchr(line, ':');
    if (!colon) return n;
    *colon = 0;
    const char *value = colon + 1;
    while (*value == ' ' || *value == '\t') value++;
    if (!strcasecmp(line, "x-linked-etag"))
        capture_sha_header(value, d->advertised_sha);
    else if (!strcasecmp(line, "etag") && !d->advertised_sha[0])
        capture_sha_header(value, d->advertised_sha);
    else if (!strcasecmp(line, "content-range")) {
        /* "bytes START-END/TOTAL" */
        const char *p = value + strcspn(value, "0123456789*");
        snprintf(d->range_start, sizeof d->range_start, "%.*s", (int)strspn(p, "0123456789"), p);
        const char *slash = strchr(value, '/');
        if (slash && isdigit((unsigned char)slash[1])) d->total = strtoll(slash + 1, NULL, 10);
    }
    return n;
}

/* Decides, at the first body byte of a response, whether it continues the
 * .part (206 at the right offset), replaces it (200), or is not content. */
static int start_body(download *d)
{
    d->body_started = 1;
    if (d->status == 206) {
        if (strtoll(d->range_start, NULL, 10) != d->have) {
            snprintf(d->err, sizeof d->err, "server resumed at byte %s, expected %lld", d->range_start, d->have);
            return -1;
        }
        return 0;
    }
    if (d->status == 200) {
        if (d->have > 0) {
            fprintf(stderr, "prbot model pull: server ignored the range request; starting over\n");
            if (fflush(d->out) || ftruncate(fileno(d->out), 0) || fseek(d->out, 0, SEEK_SET)) {
                snprintf(d->err, sizeof d->err, "cannot truncate the partial download: %s", strerror(errno));
                return -1;
            }
            sha256_init(&d->sha);
            d->have = 0;
            d->transfer_from = 0;
        }
        curl_off_t len = -1;
        curl_easy_getinfo(d->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
        d->total = len >= 0 ? (long long)len : -1;
        return 0;
    }
    d->body_rejected = 1; /* an error page: read and drop it */
    return 0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *user)
{
    download *d = user;
    size_t n = size * nmemb;
    if (!d->body_started && start_body(d)) return 0;
    if (d->body_rejected) return n;
    if (fwrite(ptr, 1, n, d->out) != n) {
        snprintf(d->err, sizeof d->err, "cannot write the download: %s", strerror(errno));
        d->write_failed = 1;
        return 0;
    }
    sha256_update(&d->sha, ptr, n);
    d->have += (long long)n;
    return n;
}

static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    download *d = user;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    if (d->body_started && !d->body_rejected && d->last_report >= 0) report_progress(d, 0);
    return 0;
}

/* ------------------------------------------------------------ one transfer */

typedef enum { TRANSFER_DONE, TRANSFER_RETRY, TRANSFER_FAILED, TRANSFER_RANGE_INVALID } transfer_result;

static transfer_result transfer(download *d, const char *url, int quiet)
{
    CURL *curl = curl_easy_init();
    if (!curl) {
        snprintf(d->err, sizeof d->err, "cannot initialise libcurl");
        return TRANSFER_FAILED;
    }
    d->curl = curl;
    d->status = 0;
    d->body_started = 0;
    d->body_rejected = 0;
    d->transfer_from = d->have;
    d->err[0] = 0;
    char range[48], curl_err[CURL_ERROR_SIZE] = "";
    snprintf(range, sizeof range, "%lld-", d->have);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
    if (d->have > 0) curl_easy_setopt(curl, CURLOPT_RANGE, range);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "prbot");
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, d);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, quiet ? 1L : 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, d);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L); /* a stalled transfer is an interrupted one */
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    http_debug_attach(curl);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    d->curl = NULL;
    if (fflush(d->out)) {
        snprintf(d->err, sizeof d->err, "cannot write the download: %s", strerror(errno));
        return TRANSFER_FAILED;
    }
    if (d->write_failed) return TRANSFER_FAILED;
    if (status == 416) return TRANSFER_RANGE_INVALID;
    if (rc == CURLE_OK && (status == 200 || status == 206)) {
        if (!d->body_started && start_body(d)) return TRANSFER_FAILED; /* an empty file */
        return TRANSFER_DONE;
    }
    if (rc == CURLE_OK || (status >= 400 && d->body_rejected)) {
        snprintf(d->err, sizeof d->err, "HTTP %ld from %.400s", status, url);
        return status >= 500 || status == 429 || status == 408 ? TRANSFER_RETRY : TRANSFER_FAILED;
    }
    if (d->err[0]) return TRANSFER_FAILED; /* our callback refused the data */
    snprintf(d->err, sizeof d->err, "download interrupted at %lld bytes: %.300s", d->have,
             curl_err[0] ? curl_err : curl_easy_strerror(rc));
    return TRANSFER_RETRY;
}

/* ------------------------------------------------------------ the command */

/* Opens CACHE/NAME.part for appending and hashes what it holds already. */
static int open_part(download *d, const char *part, char *err, size_t errlen)
{
    sha256_init(&d->sha);
    d->out = fopen(part, "ab");
    if (!d->out) {
        err_set(err, errlen, "cannot open %.400s: %s", part, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(d->out), &st)) {
        err_set(err, errlen, "cannot stat %.400s: %s", part, strerror(errno));
        return -1;
    }
    d->have = (long long)st.st_size;
    if (d->have > 0 && sha256_update_file(&d->sha, part, d->have, err, errlen)) return -1;
    return 0;
}

static int file_sha256(const char *path, char hex[65], char *err, size_t errlen)
{
    sha256_ctx ctx;
    uint8_t digest[32];
    sha256_init(&ctx);
    if (sha256_update_file(&ctx, path, -1, err, errlen)) return -1;
    sha256_final(&ctx, digest);
    sha256_hex(digest, hex);
    return 0;
}

/* Downloads opts->url into part, resuming; on success d->sha covers it all. */
static int download_part(download *d, const pull_options *o, const char *part, char *err, size_t errlen)
{
    if (open_part(d, part, err, errlen)) return -1;
    if (d->have > 0 && !o->quiet) fprintf(stderr, "prbot model pull: resuming %s at %lld bytes\n", part, d->have);
    int attempts = 4;
    const char *v = getenv("PRBOT_DOWNLOAD_ATTEMPTS");
    if (v && atoi(v) > 0) attempts = atoi(v);
    double max_wait = 30;
    if ((v = getenv("PRBOT_RETRY_MAX_WAIT")) && *v) max_wait = strtod(v, NULL);
    int restarted_after_416 = 0;
    for (int attempt = 1;; attempt++) {
        transfer_result r = transfer(d, o->url, o->quiet);
        if (r == TRANSFER_DONE) return 0;
        if (r == TRANSFER_RANGE_INVALID && d->have > 0 && d->total == d->have) return 0; /* .part complete */
        if (r == TRANSFER_RANGE_INVALID && !restarted_after_416) {
            /* The .part is not a prefix the server can continue (e.g. the file changed): start over. */
            fprintf(stderr, "prbot model pull: server cannot resume at %lld bytes; starting over\n", d->have);
            if (ftruncate(fileno(d->out), 0) || fseek(d->out, 0, SEEK_SET)) {
                err_set(err, errlen, "cannot truncate %.400s: %s", part, strerror(errno));
                return -1;
            }
            sha256_init(&d->sha);
            d->have = 0;
            restarted_after_416 = 1;
            continue;
        }
        if (r == TRANSFER_RANGE_INVALID) snprintf(d->err, sizeof d->err, "HTTP 416 from %.400s", o->url);
        if (r != TRANSFER_RETRY || attempt >= attempts) {
            err_set(err, errlen, "%s%s", d->err,
                     r == TRANSFER_RETRY ? "; the partial download is kept, run the command again to resume" : "");
            return -1;
        }
        double wait = (double)(1 << (attempt - 1 < 5 ? attempt - 1 : 5));
        if (wait > max_wait) wait = max_wait;
        fprintf(stderr, "prbot model pull: %s; resuming in %.3g s (attempt %d/%d)\n", d->err, wait, attempt + 1,
                attempts);
        sleep_seconds(wait);
    }
}

static int verify_and_install(download *d, const pull_options *o, const char *part, const char *final_path,
                              char *err, size_t errlen)
{
    uint8_t digest[32];
    char got[65], expected[65] = "";
    sha256_final(&d->sha, digest);
    sha256_hex(digest, got);
    if (o->sha256)
        snprintf(expected, sizeof expected, "%s", o->sha256);
    else if (d->advertised_sha[0])
        snprintf(expected, sizeof expected, "%s", d->advertised_sha);
    lowercase(expected);
    if (d->total >= 0 && d->have != d->total) {
        err_set(err, errlen, "download is %lld bytes, the server announced %lld; run again to resume", d->have,
                 d->total);
        return -1;
    }
    if (expected[0] && strcmp(expected, got)) {
        unlink(part);
        err_set(err, errlen, "checksum mismatch for %s: expected sha256 %s, got %s; deleted the download "
                 "(any previously cached file is untouched)", o->url, expected, got);
        return -1;
    }
    if (!expected[0])
        fprintf(stderr, "prbot model pull: warning: no --sha256 given and the server sent none; sha256 is %s\n",
                got);
    else if (!o->quiet)
        fprintf(stderr, "prbot model pull: sha256 %s verified%s\n", got, o->sha256 ? "" : " (from the server's ETag)");
    if (fsync(fileno(d->out))) {
        err_set(err, errlen, "cannot sync %.400s: %s", part, strerror(errno));
        return -1;
    }
    if (rename(part, final_path)) {
        err_set(err, errlen, "cannot move %.300s to %.300s: %s", part, final_path, strerror(errno));
        return -1;
    }
    return 0;
}

static int model_pull(const pull_options *o, char *final_path, size_t cap, char *err, size_t errlen)
{
    char dir[1024], name[256], part[1400];
    if (o->sha256 && !is_hex64(o->sha256)) {
        err_set(err, errlen, "--sha256 must be 64 hex digits (got '%.80s')", o->sha256);
        return -1;
    }
    if (strncmp(o->url, "https://", 8) && strncmp(o->url, "http://", 7)) {
        err_set(err, errlen, "URL must start with https:// or http:// (got '%.200s')", o->url);
        return -1;
    }
    if (o->output)
        snprintf(name, sizeof name, "%s", o->output);
    else if (name_from_url(o->url, name, sizeof name)) {
        err_set(err, errlen, "cannot take a file name from the URL; pass --output NAME");
        return -1;
    }
    if (!name_valid(name)) {
        err_set(err, errlen, "bad file name '%s' (no slashes); pass --output NAME", name);
        return -1;
    }
    if (model_cache_dir(o->cache, dir, sizeof dir, err, errlen) || make_dirs(dir, err, errlen)) return -1;
    snprintf(final_path, cap, "%s/%s", dir, name);
    snprintf(part, sizeof part, "%s.part", final_path);

    if (access(final_path, F_OK) == 0) {
        if (!o->sha256) {
            if (!o->quiet) fprintf(stderr, "prbot model pull: using cached %s (pass --sha256 to verify)\n", final_path);
            return 0;
        }
        char hex[65];
        if (file_sha256(final_path, hex, err, errlen)) return -1;
        char want[65];
        snprintf(want, sizeof want, "%s", o->sha256);
        lowercase(want);
        if (!strcmp(hex, want)) {
            if (!o->quiet) fprintf(stderr, "prbot model pull: cached %s verified\n", final_path);
            return 0;
        }
        fprintf(stderr, "prbot model pull: cached %s has sha256 %s, not %s; downloading again\n", final_path, hex,
                want);
    }

    download d;
    memset(&d, 0, sizeof d);
    d.total = -1;
    d.tty = isatty(STDERR_FILENO);
    d.started = engine_now_s();
    d.last_report = o->quiet ? -1 : d.started;
    d.last_report_decile = 0;
    if (!o->quiet) fprintf(stderr, "prbot model pull: %s -> %s\n", o->url, final_path);
    int rc = download_part(&d, o, part, err, errlen);
    if (!rc && !o->quiet) report_progress(&d, 1);
    if (!rc) rc = verify_and_install(&d, o, part, final_path, err, errlen);
    if (d.out) fclose(d.out);
    return rc;
}

static int cmd_model_pull(int argc, char **argv)
{
    pull_options o = {0};
    const cli_option opts[] = {
        {"--sha256", CLI_STRING, &o.sha256}, {"--cache", CLI_STRING, &o.cache},
        {"--output", CLI_STRING, &o.output}, {"--quiet", CLI_FLAG, &o.quiet},
        {NULL, CLI_FLAG, NULL},
    };
    int rc = cli_parse("model pull", argc, argv, opts, pull_usage, &o.url);
    if (rc == CLI_HELP) return 0;
    if (rc) return 2;
    if (!o.url) {
        fprintf(stderr, "prbot model pull: missing URL (see prbot model pull --help)\n");
        return 2;
    }
    char path[1300], err[1024];
    if (model_pull(&o, path, sizeof path, err, sizeof err)) {
        fprintf(stderr, "prbot model pull: %s\n", err);
        return 1;
    }
    printf("%s\n", path);
    return 0;
}

int cmd_model(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "pull")) return cmd_model_pull(argc - 1, argv + 1);
    FILE *out = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? stdout : stderr;
    fprintf(out, "usage: prbot model pull URL [--sha256 HEX] [--cache DIR] [--output NAME]\n"
                 "  (prbot model pull --help for details)\n");
    return out == stdout ? 0 : 2;
}
