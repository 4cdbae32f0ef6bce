/*
 * bench.c - `prbot bench`: prefill and decode speed, and how close decode
 * comes to what the machine's memory bandwidth allows.
 *
 * One repetition measures three things, the first two as llama-bench (the
 * reference implementation's benchmark) defines -p and -n:
 *   prefill  p random token ids evaluated in one engine_eval call, from an
 *            empty KV cache (llama-bench's pp);
 *   decode   n single-token engine_eval calls from an empty KV cache
 *            (llama-bench's tg);
 *   decode after the prompt: the same n tokens right after the p-token
 *            prefill, which is what a PR review does; each token then also
 *            reads the K and V cache of every earlier position.
 * A short untimed warm-up first brings the weights into the page cache and
 * the caches/threads up to speed. Medians over the repetitions are reported,
 * so one noisy run does not move the figures.
 *
 * Decode reads every weight once per token, so it is bounded by memory
 * bandwidth: ceiling = bandwidth / weight bytes per token. After the prompt
 * the bound is bandwidth / (weight bytes + KV bytes at the mean context),
 * reported beside it. The bandwidth is measured with the engine's probe
 * (engine_membw_*, engine/machine.c), with the same number of threads.
 *
 * A shared VM's bandwidth drifts, sometimes within one model's repetitions.
 * So every decode run is bracketed by a pass just before and just after it,
 * and its share of the ceiling uses the mean of those two: a run and its
 * bound are measured in the same second. The shares reported are the medians
 * of those per-run shares; the ceiling in tok/s uses the median of all
 * passes, whose spread is reported too.
 *
 * Prefill is bound by arithmetic the same way: every prompt token costs one
 * int8 multiply-accumulate per weight of the layers' matrices, so its ceiling
 * is the int8 rate of the kernels' multiply step (engine_membw_int8_pass) /
 * engine_info.layer_macs. An int8 pass just after each prefill run gives
 * that run its own ceiling (after, so that its heavy SIMD cannot slow the
 * run down on a CPU that lowers its clock under load), and the share reported is the median of the
 * runs' shares. Attention and the rest are left out of the count, so the
 * ceiling is one no prefill can reach. Random weights run exactly as fast
 * as trained ones, which is why tests/bench.sh can use generated models
 * (tests/tools/gen_model.c).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../engine/engine.h"
#include "cli_options.h"
#include "commands.h"
#include "errors.h"

#define BANDWIDTH_PASSES_PER_REP 4 /* one before the prefill, three around the two decode runs */
#define MAX_REPS 100
#define MAX_PASSES (BANDWIDTH_PASSES_PER_REP * MAX_REPS + 1)
#define INT8_PASS_S 0.2 /* seconds of int8 arithmetic after each prefill run */

typedef struct {
    const char *model;
    int n_prompt, n_gen, threads, reps, json, n_batch, bandwidth_mib;
    uint64_t seed;
} bench_options;

typedef struct {
    double prefill_tps, decode_tps, after_prompt_tps; /* medians */
    double prefill_runs[MAX_REPS], decode_runs[MAX_REPS], after_prompt_runs[MAX_REPS];
    double decode_bw_runs[MAX_REPS], after_prompt_bw_runs[MAX_REPS]; /* passes around each run */
    double bandwidth_gb_s;              /* median, 1e9 bytes per second */
    double bandwidth_min, bandwidth_max;
    double bandwidth_passes[MAX_PASSES];
    int n_passes;
    double handoff_ns; /* one empty parallel region on the pool, median of the repetitions */
    double int8_runs[MAX_REPS]; /* GMAC/s of the int8 pass after each prefill run */
    double int8_gmac_s;         /* their median */
    double handoff_runs[MAX_REPS];
} bench_result;

static const char bench_usage[] =
    "usage: prbot bench --model PATH [-p 512] [-n 64] [--threads N] [--reps R] [--json]\n"
    "\n"
    "Measures prompt processing (prefill) and generation (decode) speed on random\n"
    "token ids, the memory bandwidth that bounds decode, and the int8 arithmetic\n"
    "rate that bounds prefill.\n"
    "\n"
    "  --model PATH          GGUF model file (required)\n"
    "  -p, --prompt-tokens N prompt tokens evaluated in one batch (default 512)\n"
    "  -n, --gen-tokens N    tokens decoded one at a time, from an empty cache (as\n"
    "                        llama-bench's tg) and again after the prompt (default 64)\n"
    "  --threads N           threads (default: CPUs this process may use)\n"
    "  --reps R              repetitions; medians are reported (default 3)\n"
    "  --batch N             prompt tokens per forward chunk (default 512)\n"
    "  --bandwidth-mib M     size of the bandwidth test buffer (default 1024)\n"
    "  --seed S              seed of the random token ids (default 1)\n"
    "  --json                print one JSON object instead of a table\n";

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
    double sorted[MAX_PASSES];
    memcpy(sorted, v, (size_t)n * sizeof *v);
    qsort(sorted, (size_t)n, sizeof *sorted, compare_double);
    return n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
}

/* cli_parse knows only long options; the contract's -p and -n are mapped. */
static void map_short_flags(int argc, char **argv, char **mapped)
{
    for (int i = 0; i < argc; i++) {
        mapped[i] = argv[i];
        if (!strcmp(argv[i], "-p")) mapped[i] = "--prompt-tokens";
        if (!strcmp(argv[i], "-n")) mapped[i] = "--gen-tokens";
    }
    mapped[argc] = NULL;
}

static int parse_bench(int argc, char **argv, bench_options *o)
{
    *o = (bench_options){.n_prompt = 512, .n_gen = 64, .reps = 3, .bandwidth_mib = 1024, .seed = 1};
    const cli_option opts[] = {
        {"--model", CLI_STRING, &o->model},
        {"--prompt-tokens", CLI_INT, &o->n_prompt},
        {"--gen-tokens", CLI_INT, &o->n_gen},
        {"--threads", CLI_INT, &o->threads},
        {"--reps", CLI_INT, &o->reps},
        {"--batch", CLI_INT, &o->n_batch},
        {"--bandwidth-mib", CLI_INT, &o->bandwidth_mib},
        {"--seed", CLI_U64, &o->seed},
        {"--json", CLI_FLAG, &o->json},
        {NULL, 0, NULL},
    };
    char **mapped = malloc((size_t)(argc + 1) * sizeof *mapped);
    if (!mapped) {
        fprintf(stderr, "prbot bench: out of memory\n");
        return 2;
    }
    map_short_flags(argc, argv, mapped);
    int rc = cli_parse("bench", argc, mapped, opts, bench_usage, NULL);
    free(mapped);
    if (rc) return rc;
    if (!o->model) {
        fprintf(stderr, "prbot bench: --model is required (see prbot bench --help)\n");
        return 2;
    }
    if (o->n_prompt < 1 || o->n_gen < 1 || o->reps < 1 || o->reps > MAX_REPS || o->threads < 0 || o->n_batch < 0 ||
        o->bandwidth_mib < 1) {
        fprintf(stderr, "prbot bench: -p and -n must be >= 1, --reps 1..%d, --bandwidth-mib >= 1, "
                        "--threads and --batch >= 0\n", MAX_REPS);
        return 2;
    }
    return 0;
}

/* ------------------------------------------------------------ bandwidth */

/* A pass recorded for the median; returns its GB/s. */
static double recorded_pass(engine_membw *b, bench_result *r)
{
    double gb_s = engine_membw_pass(b);
    if (r->n_passes < MAX_PASSES) r->bandwidth_passes[r->n_passes++] = gb_s;
    return gb_s;
}

static void bandwidth_summary(bench_result *r)
{
    r->bandwidth_gb_s = median(r->bandwidth_passes, r->n_passes);
    r->bandwidth_min = r->bandwidth_max = r->bandwidth_passes[0];
    for (int i = 1; i < r->n_passes; i++) {
        if (r->bandwidth_passes[i] < r->bandwidth_min) r->bandwidth_min = r->bandwidth_passes[i];
        if (r->bandwidth_passes[i] > r->bandwidth_max) r->bandwidth_max = r->bandwidth_passes[i];
    }
}

/* ----------------------------------------------------------- the model */

static uint64_t next_random(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* n single-token evaluations of tokens[0, n); returns tokens per second, or -1. */
static double decode_run(engine_session *ses, const int32_t *tokens, int n, char *err, size_t errlen)
{
    double t0 = engine_now_s();
    for (int i = 0; i < n; i++)
        if (engine_eval(ses, &tokens[i], 1, NULL, err, errlen)) return -1;
    return n / (engine_now_s() - t0);
}

/* One repetition: prefill p tokens and decode n after them; then decode n
 * from an empty cache. Each decode run lies between two bandwidth passes. */
static int run_once(engine_session *e, engine_membw *probe, const int32_t *tokens, const bench_options *o,
                    bench_result *r, int rep, char *err, size_t errlen)
{
    recorded_pass(probe, r);
    engine_reset(e);
    double t0 = engine_now_s();
    if (engine_eval(e, tokens, o->n_prompt, NULL, err, errlen)) return -1;
    r->prefill_runs[rep] = o->n_prompt / (engine_now_s() - t0);
    r->int8_runs[rep] = engine_membw_int8_pass(probe, INT8_PASS_S);
    r->handoff_runs[rep] = engine_membw_handoff_ns(probe);
    double before = recorded_pass(probe, r);
    if ((r->after_prompt_runs[rep] = decode_run(e, tokens + o->n_prompt, o->n_gen, err, errlen)) < 0) return -1;
    double between = recorded_pass(probe, r);
    engine_reset(e);
    if ((r->decode_runs[rep] = decode_run(e, tokens + o->n_prompt, o->n_gen, err, errlen)) < 0) return -1;
    double after = recorded_pass(probe, r);
    r->after_prompt_bw_runs[rep] = 0.5 * (before + between);
    r->decode_bw_runs[rep] = 0.5 * (between + after);
    return 0;
}

static int run_bench(engine_session *e, engine_membw *probe, const bench_options *o, bench_result *r, char *err,
                     size_t errlen)
{
    const engine_info *info = engine_get_info(engine_session_model(e));
    int n_tokens = o->n_prompt + o->n_gen;
    int32_t *tokens = malloc((size_t)n_tokens * sizeof *tokens);
    if (!tokens) {
        err_set(err, errlen, "out of memory");
        return -1;
    }
    uint64_t rng = o->seed;
    for (int i = 0; i < n_tokens; i++) tokens[i] = (int32_t)(next_random(&rng) % (uint64_t)info->n_vocab);
    int rc = -1;
    /* untimed warm-up: page in the weights, wake the threads */
    engine_reset(e);
    int n_warm = o->n_prompt < 16 ? o->n_prompt : 16;
    if (engine_eval(e, tokens, n_warm, NULL, err, errlen) || engine_eval(e, tokens + n_warm, 1, NULL, err, errlen))
        goto done;
    for (int i = 0; i < o->reps; i++)
        if (run_once(e, probe, tokens, o, r, i, err, errlen)) goto done;
    bandwidth_summary(r);
    r->prefill_tps = median(r->prefill_runs, o->reps);
    r->decode_tps = median(r->decode_runs, o->reps);
    r->handoff_ns = median(r->handoff_runs, o->reps);
    r->int8_gmac_s = median(r->int8_runs, o->reps);
    r->after_prompt_tps = median(r->after_prompt_runs, o->reps);
    rc = 0;
done:
    free(tokens);
    return rc;
}

/* ------------------------------------------------------------- output */

static double ceiling_tps(const bench_result *r, const engine_info *info)
{
    return info->weight_bytes ? r->bandwidth_gb_s * 1e9 / (double)info->weight_bytes : 0;
}

/* Bytes a decoded token reads after the prompt: weights and the KV cache at the mean context. */
static double after_prompt_bytes(const bench_options *o, const engine_info *info)
{
    return (double)info->weight_bytes + (double)info->kv_bytes_per_position * (o->n_prompt + 0.5 * o->n_gen);
}

static double after_prompt_ceiling_tps(const bench_options *o, const bench_result *r, const engine_info *info)
{
    return r->bandwidth_gb_s * 1e9 / after_prompt_bytes(o, info);
}

/* Median over the runs of each run's share of the ceiling set by its own bracketing passes. */
static double paired_share(const double *tps, const double *bw_gb_s, int n, double bytes_per_token)
{
    double share[MAX_REPS] = {0};
    for (int i = 0; i < n; i++) share[i] = bw_gb_s[i] > 0 ? tps[i] * bytes_per_token / (bw_gb_s[i] * 1e9) : 0;
    return median(share, n);
}

/* Prefill tokens/s the int8 rate allows (0 when the kernels have no int8 step). */
static double prefill_ceiling_tps(const bench_result *r, const engine_info *info)
{
    return info->layer_macs ? r->int8_gmac_s * 1e9 / (double)info->layer_macs : 0;
}

/* Median over the prefill runs of each run's share of the int8 ceiling measured just after it. */
static double prefill_share(const bench_options *o, const bench_result *r, const engine_info *info)
{
    double share[MAX_REPS] = {0};
    for (int i = 0; i < o->reps; i++)
        share[i] = r->int8_runs[i] > 0 ? r->prefill_runs[i] * (double)info->layer_macs / (r->int8_runs[i] * 1e9) : 0;
    return median(share, o->reps);
}

typedef struct {
    double decode, after_prompt, after_prompt_with_kv;
} ceiling_shares;

static ceiling_shares shares_of(const bench_options *o, const bench_result *r, const engine_info *info)
{
    return (ceiling_shares){
        .decode = paired_share(r->decode_runs, r->decode_bw_runs, o->reps, (double)info->weight_bytes),
        .after_prompt = paired_share(r->after_prompt_runs, r->after_prompt_bw_runs, o->reps, (double)info->weight_bytes),
        .after_prompt_with_kv =
            paired_share(r->after_prompt_runs, r->after_prompt_bw_runs, o->reps, after_prompt_bytes(o, info)),
    };
}

static json_t *json_runs(const double *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_real(v[i]));
    return a;
}

static void print_json(const bench_options *o, const engine_info *info, uint64_t model_bytes, const bench_result *r)
{
    double ceiling = ceiling_tps(r, info), after_ceiling = after_prompt_ceiling_tps(o, r, info);
    ceiling_shares share = shares_of(o, r, info);
    json_t *j = json_object();
    json_object_set_new(j, "model", json_string(o->model));
    json_object_set_new(j, "name", json_string(info->name));
    json_object_set_new(j, "arch", json_string(info->arch));
    json_object_set_new(j, "file_type", json_string(info->file_type));
    json_object_set_new(j, "isa", json_string(engine_isa()));
    json_object_set_new(j, "threads", json_integer(info->n_threads));
    json_object_set_new(j, "p", json_integer(o->n_prompt));
    json_object_set_new(j, "n", json_integer(o->n_gen));
    json_object_set_new(j, "reps", json_integer(o->reps));
    json_object_set_new(j, "prefill_tokens_per_s", json_real(r->prefill_tps));
    json_object_set_new(j, "decode_tokens_per_s", json_real(r->decode_tps));
    json_object_set_new(j, "prefill_runs", json_runs(r->prefill_runs, o->reps));
    json_object_set_new(j, "decode_runs", json_runs(r->decode_runs, o->reps));
    json_object_set_new(j, "decode_after_prompt_tokens_per_s", json_real(r->after_prompt_tps));
    json_object_set_new(j, "decode_after_prompt_runs", json_runs(r->after_prompt_runs, o->reps));
    json_object_set_new(j, "model_bytes", json_integer((json_int_t)model_bytes));
    json_object_set_new(j, "weight_bytes", json_integer((json_int_t)info->weight_bytes));
    json_object_set_new(j, "mem_bandwidth_gb_s", json_real(r->bandwidth_gb_s));
    json_object_set_new(j, "mem_bandwidth_min_gb_s", json_real(r->bandwidth_min));
    json_object_set_new(j, "mem_bandwidth_max_gb_s", json_real(r->bandwidth_max));
    json_object_set_new(j, "thread_handoff_ns", json_real(r->handoff_ns));
    json_object_set_new(j, "bandwidth_ceiling_tokens_per_s", json_real(ceiling));
    json_object_set_new(j, "decode_bandwidth_runs_gb_s", json_runs(r->decode_bw_runs, o->reps));
    json_object_set_new(j, "decode_after_prompt_bandwidth_runs_gb_s", json_runs(r->after_prompt_bw_runs, o->reps));
    json_object_set_new(j, "decode_fraction_of_ceiling", json_real(share.decode));
    json_object_set_new(j, "kv_bytes_per_position", json_integer((json_int_t)info->kv_bytes_per_position));
    json_object_set_new(j, "decode_after_prompt_ceiling_tokens_per_s", json_real(after_ceiling));
    json_object_set_new(j, "decode_after_prompt_fraction_of_ceiling", json_real(share.after_prompt));
    json_object_set_new(j, "decode_after_prompt_fraction_of_ceiling_with_kv", json_real(share.after_prompt_with_kv));
    json_object_set_new(j, "layer_macs_per_token", json_integer((json_int_t)info->layer_macs));
    json_object_set_new(j, "int8_gmac_s", json_real(r->int8_gmac_s));
    json_object_set_new(j, "int8_runs_gmac_s", json_runs(r->int8_runs, o->reps));
    json_object_set_new(j, "prefill_ceiling_tokens_per_s", json_real(prefill_ceiling_tps(r, info)));
    json_object_set_new(j, "prefill_fraction_of_ceiling", json_real(prefill_share(o, r, info)));
    json_dumpf(j, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
    fputc('\n', stdout);
    json_decref(j);
}

static void print_table(const bench_options *o, const engine_info *info, uint64_t model_bytes, const bench_result *r)
{
    double ceiling = ceiling_tps(r, info), after_ceiling = after_prompt_ceiling_tps(o, r, info);
    ceiling_shares share = shares_of(o, r, info);
    printf("model     %s (%s, mostly %s)\n", info->name, info->arch, info->file_type);
    printf("file      %.1f MB, %.1f MB of weights read per token\n", model_bytes / 1e6, info->weight_bytes / 1e6);
    printf("machine   %d threads, kernels %s, memory %.1f GB/s (passes %.1f..%.1f), thread hand-off %.0f ns\n",
           info->n_threads, engine_isa(), r->bandwidth_gb_s, r->bandwidth_min, r->bandwidth_max,
           r->handoff_ns);
    char after_label[48];
    snprintf(after_label, sizeof after_label, "decode after %d", o->n_prompt);
    printf("\n%-18s %7s %10s\n", "phase", "tokens", "tok/s");
    if (r->int8_gmac_s > 0)
        printf("%-18s %7d %10.1f   (int8 ceiling %.1f tok/s at %.0f GMAC/s: %.0f%%)\n", "prefill", o->n_prompt,
               r->prefill_tps, prefill_ceiling_tps(r, info), r->int8_gmac_s, 100.0 * prefill_share(o, r, info));
    else
        printf("%-18s %7d %10.1f\n", "prefill", o->n_prompt, r->prefill_tps);
    printf("%-18s %7d %10.1f   (ceiling %.1f tok/s: %.0f%%)\n", "decode", o->n_gen, r->decode_tps, ceiling,
           100.0 * share.decode);
    printf("%-18s %7d %10.1f   (%.0f%% of that; counting the KV cache it reads, ceiling %.1f tok/s: %.0f%%)\n",
           after_label, o->n_gen, r->after_prompt_tps, 100.0 * share.after_prompt, after_ceiling,
           100.0 * share.after_prompt_with_kv);
    printf("\nmedians of %d repetitions; each decode run's share of the ceiling uses the passes around it,\n"
           "each prefill run's the int8 pass just after it\n",
           o->reps);
}

int cmd_bench(int argc, char **argv)
{
    bench_options o;
    int rc = parse_bench(argc, argv, &o);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    char err[512];
    struct stat st;
    if (stat(o.model, &st)) {
        fprintf(stderr, "prbot bench: cannot read %s: no such file (make one with tests/tools/gen_model)\n", o.model);
        return 1;
    }
    engine *e;
    engine_params params = {.n_threads = o.threads, .n_ctx = o.n_prompt + o.n_gen, .n_batch = o.n_batch};
    if (engine_open(&e, o.model, &params, err, sizeof err)) {
        fprintf(stderr, "prbot bench: %s\n", err);
        return 1;
    }
    const engine_info *info = engine_get_info(e);
    bench_result r = {0};
    rc = 1;
    engine_session *ses = NULL;
    engine_membw *probe = NULL;
    if (engine_session_new(&ses, e, 0, err, sizeof err) ||
        engine_membw_new(&probe, info->n_threads, o.bandwidth_mib, err, sizeof err) ||
        run_bench(ses, probe, &o, &r, err, sizeof err)) {
        fprintf(stderr, "prbot bench: %s\n", err);
    } else {
        if (o.json)
            print_json(&o, info, (uint64_t)st.st_size, &r);
        else
            print_table(&o, info, (uint64_t)st.st_size, &r);
        rc = 0;
    }
    engine_membw_free(probe);
    engine_session_free(ses);
    engine_close(e);
    return rc;
}
