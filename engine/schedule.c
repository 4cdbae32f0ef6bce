/*
 * schedule.c - who computes which part of the forward pass, and when.
 *
 * model.c's transformer() says what a pass computes; it calls run_product,
 * run_attention and run_rows, and this file splits each across the thread
 * pool in one of two ways:
 *
 * Prefill (a batch of tokens): transformer() runs on the calling thread and
 * every step is its own parallel region (threads_run): the rows of a
 * product's input are prepared and quantized split by token, then the output
 * rows are taken in 64-row tiles from a counter; attention is split into
 * (KV head, block of tokens) items.
 *
 * Decode (one token) is one parallel region for the whole pass, not one per
 * step: with ~5 products per layer, handing each to the threads and waiting
 * for them cost two cache-line transfers each, with the small steps between
 * them (norms, RoPE, the FFN activation, quantizing the next input) run by
 * one thread while the others waited. Here every thread runs transformer()
 * itself on its own copy of the residual stream, doing those small steps
 * redundantly from the shared outputs of the last product, and the threads
 * meet only at a barrier after each product and after attention (and
 * between its phases when it has three). Every thread computes the same
 * values in the same order, and every shared value is computed by one thread
 * in a fixed order, so the result does not depend on the number of threads.
 *
 * How to extend: a new kind of step in transformer() that works row by row
 * goes through run_rows (or a product's row_input) and needs nothing here; a
 * new product needs its matrices in product_matrices (model.c); only a new
 * way of splitting work belongs in this file.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "forward.h"
#include "kernels/kernels.h"
#include "kernels/panels.h"
#include "quant.h"

#define MATMUL_ROW_TILE 64 /* prefill: rows per gemm call (amortises per-call token work) */
#define MATMUL_TOK_TILE 32

/* Where thread ith of nth starts when n items are split evenly. */
static int split_point(int n, int ith, int nth) { return (int)((long long)n * ith / nth); }

/* ------------------------------------------------------ matrix multiply */

/*
 * Several products that share one input (q/k/v, or gate/up) run as one
 * parallel region: the input is quantized once per activation format, and
 * the output rows of all matrices form one range, so a decode step pays one
 * barrier per group, not per matrix. Each matrix's part of the range
 * is padded to a multiple of PANEL_ROWS, so every piece starts on a weight panel.
 *
 * Prefill takes 64-row tiles from an atomic counter (each tile is plenty of
 * work). Decode is a stream of weights from memory, and a stream is fastest
 * when it is long and sequential: the hardware prefetcher needs a few lines
 * to lock on, so a thread that hops between small chunks pays a memory
 * latency at every hop (the more chunks per thread, the slower the decode;
 * one contiguous share per thread is the fastest). So each thread owns
 * an equal contiguous share of the range and walks it front to back a few
 * panels at a time; a thread that finishes first (a vCPU that was slower
 * this millisecond, or started later) takes panels from the back of the
 * others' shares. Owner and thief claim from opposite ends of one
 * atomic word (front | back << 32), so a claim is one compare-and-swap on a
 * line only the owner touches until the end.
 */
#define MATMUL_MAX 3
#define OWNER_STEP_PANELS 64 /* decode: most panels an owner claims at once (3/4 of what is left, at most this) */

typedef struct {
    const matrix *w[MATMUL_MAX];
    float *y[MATMUL_MAX]; /* n_tok rows, y_stride apart, of that matrix's n_out outputs */
    size_t y_stride;
    int n_mats, n_tok, n_in, total_rows; /* total_rows: the padded range */
    int tile_rows;
    atomic_int next_chunk;     /* prefill: next tile */
    owned_share *shares;       /* decode: one per thread */
    float *x;                  /* n_tok f32 input rows, x_stride floats apart */
    size_t x_stride;
    const pass *p;             /* with `in`: the rows are in's rows of tokens first_tok.. */
    const row_input *in;
    int first_tok;
    const uint8_t *act[3];     /* input rows in each act_format that is needed */
    size_t act_stride[3];
    int need[3];
    float *wtile;              /* per thread: MATMUL_ROW_TILE dequantized rows (F16/BF16/F32 prefill) */
    size_t wtile_floats;
} matmul_task;

static void matmul_quantize_worker(void *ctx, int ith, int nth)
{
    matmul_task *t = ctx;
    for (int r = ith; r < t->n_tok; r += nth) {
        float *x = t->x + (size_t)r * t->x_stride;
        if (t->in) t->in->fn(t->p, t->first_tok + r, x, t->in->arg);
        for (int fmt = ACT_Q8_32; fmt <= ACT_Q8_K; fmt++)
            if (t->need[fmt]) kernels.quantize_act[fmt](x, (uint8_t *)t->act[fmt] + (size_t)r * t->act_stride[fmt], t->n_in);
    }
}

/* Float weights in prefill: dequantize a tile of rows and let OpenBLAS's
 * sgemm (single-threaded: our pool already splits the rows) do the product,
 * which measures faster than any dot-product loop for these types. */
static void matmul_rows_sgemm(const matmul_task *t, int m, int r0, int r1, float *wtile)
{
    const gguf_tensor *w = t->w[m]->t;
    size_t row_bytes = quant_row_size(w->type, t->n_in);
    dequantize_row_fn dequantize = quant_traits_of(w->type)->dequantize_row;
    for (int r = r0; r < r1; r++)
        dequantize((const uint8_t *)w->data + (size_t)r * row_bytes, wtile + (size_t)(r - r0) * t->n_in, t->n_in);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t->n_tok, r1 - r0, t->n_in, 1.0f, t->x, (int)t->x_stride, wtile,
                t->n_in, 0.0f, t->y[m] + r0, (int)t->y_stride);
}

/* Rows [r0, r1) of matrix m for every token. */
static void matmul_rows(const matmul_task *t, int m, int r0, int r1, float *wtile)
{
    const gguf_tensor *w = t->w[m]->t;
    int fmt = quant_traits_of(w->type)->act;
    size_t row_bytes = quant_row_size(w->type, t->n_in), ys = t->y_stride;
    const uint8_t *wr = (const uint8_t *)w->data + (size_t)r0 * row_bytes, *act = t->act[fmt];
    size_t stride = t->act_stride[fmt];
    float *y = t->y[m];
    if (t->w[m]->panels) {
        kernels.gemm_panels[w->type](t->n_in, t->w[m]->panels, r0, r1 - r0, act, stride, t->n_tok, y + r0, ys);
        return;
    }
    if (t->n_tok > 1 && fmt == ACT_F32) {
        matmul_rows_sgemm(t, m, r0, r1, wtile);
        return;
    }
    if (t->n_tok == 1 || !kernels.gemm[w->type]) {
        vec_dot_fn dot = kernels.vec_dot[w->type];
        for (int tk = 0; tk < t->n_tok; tk++)
            for (int r = r0; r < r1; r++)
                y[(size_t)tk * ys + r] = dot(t->n_in, wr + (size_t)(r - r0) * row_bytes, act + (size_t)tk * stride);
        return;
    }
    for (int tk0 = 0; tk0 < t->n_tok; tk0 += MATMUL_TOK_TILE) {
        int n_act = t->n_tok - tk0 < MATMUL_TOK_TILE ? t->n_tok - tk0 : MATMUL_TOK_TILE;
        kernels.gemm[w->type](t->n_in, wr, row_bytes, r1 - r0, act + (size_t)tk0 * stride, stride, n_act,
                              y + (size_t)tk0 * ys + r0, ys);
    }
}

static int padded_rows(const matrix *w) { return ((int)w->t->ne[1] + PANEL_ROWS - 1) / PANEL_ROWS * PANEL_ROWS; }

/* Rows [g0, g1) of the padded concatenated range. */
static void matmul_range(const matmul_task *t, int g0, int g1, float *wtile)
{
    int base = 0;
    for (int m = 0; m < t->n_mats && g0 < g1; m++) {
        int n_out = (int)t->w[m]->t->ne[1], end = base + padded_rows(t->w[m]);
        if (g0 < end) {
            int r0 = g0 - base, r1 = (g1 < end ? g1 : end) - base;
            if (r1 > n_out) r1 = n_out;
            /* decode on panels: one call for the whole chunk, its per-call work shared by all panels */
            int step = t->n_tok == 1 && t->w[m]->panels ? r1 - r0 : t->tile_rows;
            for (int r = r0; r < r1; r += step) matmul_rows(t, m, r, r + step < r1 ? r + step : r1, wtile);
            g0 = end;
        }
        base = end;
    }
}

static uint64_t span_of(uint32_t front, uint32_t back) { return front | (uint64_t)back << 32; }

/* Claims panels from the front of a share (its owner: 3/4 of what is left,
 * at most OWNER_STEP_PANELS, so the last claims are small enough to leave
 * something to take; each claim is a locked instruction, which waits for the
 * loads in flight, so claims are few) or half of what is left from its back (a thread done
 * with its own: each steal is a compare-and-swap on a line the owner keeps
 * using, dear when the two are on different core complexes, so a thief
 * takes enough to be worth it; one panel at a time lowered the decode
 * ceiling there); returns how many and sets *first, or 0 when the
 * share is empty. */
static int share_claim(owned_share *sh, int from_back, int *first)
{
    uint64_t span = atomic_load_explicit(&sh->span, memory_order_relaxed);
    for (;;) {
        uint32_t front = (uint32_t)span, back = (uint32_t)(span >> 32);
        if (front >= back) return 0;
        int left = (int)(back - front), most = (3 * left + 3) / 4;
        int n = from_back ? (left / 2 > 0 ? left / 2 : 1) : most < OWNER_STEP_PANELS ? most : OWNER_STEP_PANELS;
        uint64_t claimed = from_back ? span_of(front, back - (uint32_t)n) : span_of(front + (uint32_t)n, back);
        if (atomic_compare_exchange_weak_explicit(&sh->span, &span, claimed, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *first = from_back ? (int)(back - (uint32_t)n) : (int)front;
            return n;
        }
    }
}

static void matmul_panels(const matmul_task *t, int first, int n, float *wtile)
{
    int g1 = (first + n) * PANEL_ROWS;
    matmul_range(t, first * PANEL_ROWS, g1 < t->total_rows ? g1 : t->total_rows, wtile);
}

static void matmul_worker(void *ctx, int ith, int nth)
{
    matmul_task *t = ctx;
    float *wtile = t->wtile ? t->wtile + (size_t)ith * t->wtile_floats : NULL;
    if (!t->shares) {
        for (;;) {
            int g0 = atomic_fetch_add_explicit(&t->next_chunk, 1, memory_order_relaxed) * t->tile_rows;
            if (g0 >= t->total_rows) break;
            matmul_range(t, g0, g0 + t->tile_rows < t->total_rows ? g0 + t->tile_rows : t->total_rows, wtile);
        }
        return;
    }
    int first, n;
    while ((n = share_claim(&t->shares[ith], 0, &first))) matmul_panels(t, first, n, wtile);
    for (int k = 1; k < nth; k++) /* then help the others, nearest first */
        while ((n = share_claim(&t->shares[(ith + k) % nth], 1, &first)))
            matmul_panels(t, first, n, wtile);
}

/* The task for product `step` on n_tok input rows x, x_stride apart (0: n_in;
 * computed by `in` from tokens first_tok.. when given), quantized into
 * act_buf; outputs to y (the product's own buffer unless it is NULL: the
 * output matrix, whose rows go to logits). */
static void matmul_task_init(matmul_task *t, const pass *p, int step, float *x, size_t x_stride, int n_tok,
                             const row_input *in, int first_tok, uint8_t *act_buf, float *logits)
{
    const model_state *s = p->s;
    const matrix *w[MATMUL_MAX];
    float *y;
    int n_mats = product_matrices(s, step, w, &y);
    *t = (matmul_task){.n_mats = n_mats, .n_tok = n_tok, .n_in = (int)w[0]->t->ne[0], .x = x, .p = p, .in = in,
                       .first_tok = first_tok, .wtile = s->wtile, .wtile_floats = s->wtile_floats,
                       .tile_rows = n_tok == 1 ? PANEL_ROWS : MATMUL_ROW_TILE};
    if (!y) y = logits;
    t->x_stride = x_stride ? x_stride : (size_t)t->n_in;
    for (int m = 0; m < n_mats; m++) {
        t->w[m] = w[m];
        t->y[m] = y + t->y_stride; /* the matrices' outputs side by side */
        t->y_stride += (size_t)w[m]->t->ne[1];
        t->total_rows += padded_rows(w[m]);
        t->need[quant_traits_of(w[m]->t->type)->act] = 1;
    }
    t->act[ACT_F32] = (const uint8_t *)x;
    t->act_stride[ACT_F32] = t->x_stride * sizeof(float);
    for (int fmt = ACT_Q8_32; fmt <= ACT_Q8_K; fmt++)
        if (t->need[fmt]) {
            t->act[fmt] = act_buf;
            t->act_stride[fmt] = act_row_size((act_format)fmt, t->n_in);
            act_buf += t->act_stride[fmt] * (size_t)n_tok;
        }
    atomic_init(&t->next_chunk, 0);
}

static int needs_quantize(const matmul_task *t) { return t->need[ACT_Q8_32] || t->need[ACT_Q8_K] || t->in; }

/* Prefill: the product as two parallel regions, preparing and quantizing
 * the input rows and then taking 64-row tiles of the outputs. */
static void prefill_product(pass *p, int step, const row_input *in)
{
    model_state *s = p->s;
    int first = step == output_step(p->m) ? p->out_first : 0;
    float *x = !in ? s->att : in->rows ? in->rows + (size_t)first * in->stride : s->in;
    matmul_task t;
    matmul_task_init(&t, p, step, x, in && in->rows ? in->stride : 0, p->n_tok - first, in, first, s->act, p->logits);
    if (needs_quantize(&t)) threads_run(s->pool, matmul_quantize_worker, &t);
    threads_run(s->pool, matmul_worker, &t);
}

/* ---------------------------------------------------------- decode steps */

static int decode_products(const model *m) { return output_step(m) + 1; }

static int product_panels(const model_state *s, int step)
{
    const matrix *w[MATMUL_MAX];
    float *y;
    int n_mats = product_matrices(s, step, w, &y), rows = 0;
    for (int i = 0; i < n_mats; i++) rows += padded_rows(w[i]);
    return rows / PANEL_ROWS;
}

/* Thread ith's equal contiguous share of the panels of decode product `step`. */
static void decode_share_init(model_state *s, int step, int ith, int nth)
{
    int n_panels = product_panels(s, step);
    uint32_t front = (uint32_t)split_point(n_panels, ith, nth), back = (uint32_t)split_point(n_panels, ith + 1, nth);
    atomic_store_explicit(&s->shares[(size_t)step * nth + ith].span, span_of(front, back), memory_order_relaxed);
}

/*
 * What a thread does at a barrier of decode: it asks for the first weights
 * of its share of the next product. The kernels prefetch a fixed distance
 * ahead of what they read, so without this a share's first lines would come
 * one demand miss at a time; and the time a thread waits for the others is
 * memory bandwidth nobody uses. So the first SHARE_PREFETCH_L1 bytes are
 * asked for at once (to L1), then more, to L2, a step at a time while some
 * thread has not arrived, up to SHARE_PREFETCH_MAX.
 */
#define SHARE_PREFETCH_L1 8192
#define SHARE_PREFETCH_MAX 65536
#define SHARE_PREFETCH_STEP 512

/* The front of thread ith's share of decode product `step`, up to the end of
 * the share or of its first matrix: *bytes long (0: nothing to ask for). */
static const char *share_front(const model_state *s, int step, int ith, int nth, size_t *bytes)
{
    const matrix *w[MATMUL_MAX];
    float *y;
    int n_mats = product_matrices(s, step, w, &y);
    uint64_t span = atomic_load_explicit(&s->shares[(size_t)step * nth + ith].span, memory_order_relaxed);
    int panel = (int)(uint32_t)span, end = (int)(span >> 32);
    *bytes = 0;
    for (int m = 0; m < n_mats && panel < end; m++) {
        int n_panels = padded_rows(w[m]) / PANEL_ROWS;
        if (panel >= n_panels) {
            panel -= n_panels;
            end -= n_panels;
            continue;
        }
        if (!w[m]->panels) return NULL;
        size_t panel_bytes = panels_size(w[m]->t->type, (int)w[m]->t->ne[0], PANEL_ROWS);
        *bytes = (size_t)((end < n_panels ? end : n_panels) - panel) * panel_bytes;
        return (const char *)w[m]->panels + (size_t)panel * panel_bytes;
    }
    return NULL;
}

/*
 * Decode attention: one token's query heads over the cache. When the KV heads
 * divide evenly among the threads, or the context is short (up to
 * DECODE_SHORT_KEYS keys, where a head is a fraction of a microsecond of
 * work), each thread takes whole KV heads: it stores the new token's K and V
 * rows of its heads, then does scores, softmax and P x V for every query
 * head of the group, and one barrier follows. Otherwise three phases
 * separated by barriers, each split so that every thread reads a different
 * part of the cache and no KV head is read twice (with 3 KV heads on 2
 * threads, a split by heads would read one of them on both, and one thread
 * would do twice the work of the other):
 *   1. scores: each thread takes a range of keys (whole 16-key blocks) for
 *      every head, into the shared [n_head][n_ctx] score rows;
 *   2. softmax: each thread takes a range of heads (whole rows);
 *   3. P x V: each thread takes a range of (KV head, 16-column chunk) items,
 *      so it reads only its columns of every V row.
 * Every value is computed by one thread in one fixed order, and the kernels
 * give the same bits for a key or a column whichever part of a split it is
 * in, so the result depends neither on the number of threads nor on the way
 * chosen. (Two barriers a layer fewer: a barrier is dearest when the
 * threads are on two core complexes.)
 */
#define DECODE_KEY_BLOCK 16
#define DECODE_COLUMN_CHUNK 16
#define DECODE_SHORT_KEYS 128

static int decode_attention_by_heads(const model *m, int n_keys, int nth)
{
    return m->n_head_kv % nth == 0 || n_keys <= DECODE_SHORT_KEYS;
}

/* Before the barrier after q/k/v: the cache rows (positions before pos, up to
 * SHARE_PREFETCH_MAX bytes of each) that attention will read for thread ith's
 * KV heads when it goes by heads. The cache is small next to the weights
 * streamed since the last token, so these rows come from memory. */
static void prefetch_own_kv(const model_state *s, int il, int ith, int nth)
{
    const model *m = s->m;
    int first, n_keys = key_range(s, il, s->pos, &first);
    if (!decode_attention_by_heads(m, n_keys, nth)) return;
    size_t bytes = (size_t)(n_keys - 1) * m->head_dim * sizeof(f16_t);
    if (bytes > SHARE_PREFETCH_MAX) bytes = SHARE_PREFETCH_MAX;
    for (int kvh = split_point(m->n_head_kv, ith, nth); kvh < split_point(m->n_head_kv, ith + 1, nth); kvh++) {
        const char *k = (const char *)kv_row(s, s->k_cache, il, kvh, first);
        const char *v = (const char *)kv_row(s, s->v_cache, il, kvh, first);
        for (size_t o = 0; o < bytes; o += 64) {
            __builtin_prefetch(k + o, 0, 3);
            __builtin_prefetch(v + o, 0, 3);
        }
    }
}

/* The barrier after a decode phase; while waiting, the front of this thread's share of product `next` (-1: none). */
static void decode_barrier(model_state *s, int next, int ith, int nth)
{
    unsigned ticket = threads_arrive(s->pool, ith);
    size_t bytes = 0, done = 0;
    const char *front = next >= 0 ? share_front(s, next, ith, nth, &bytes) : NULL;
    for (; done < bytes && done < SHARE_PREFETCH_L1; done += 64) __builtin_prefetch(front + done, 0, 3);
    while (done < bytes && done < SHARE_PREFETCH_MAX && !threads_all_arrived(s->pool, ticket))
        for (size_t step_end = done + SHARE_PREFETCH_STEP; done < step_end; done += 64)
            __builtin_prefetch(front + done, 0, 2);
    threads_wait_arrivals(s->pool, ticket);
}

/* Decode: this thread's input row, quantized into its own buffer, its part
 * of the panels (stealing included), its share of the next product laid out
 * before the barrier that lets anyone look at it (so the line is in its own
 * cache for its first claim), then the barrier. */
static void decode_product(pass *p, int step, const row_input *in)
{
    model_state *s = p->s;
    decode_scratch *me = p->me;
    float *x = s->att;
    if (in) {
        in->fn(p, 0, me->in, in->arg);
        x = me->in;
    }
    matmul_task t;
    matmul_task_init(&t, p, step, x, 0, 1, NULL, 0, me->act, p->logits);
    t.shares = s->shares + (size_t)step * p->nth;
    if (needs_quantize(&t)) matmul_quantize_worker(&t, 0, 1);
    matmul_worker(&t, p->ith, p->nth);
    if (step + 1 == decode_products(p->m)) return; /* the last: the region ends here */
    decode_share_init(s, step + 1, p->ith, p->nth);
    if (step % PRODUCTS_PER_LAYER == PRODUCT_QKV) { /* attention comes next */
        prefetch_own_kv(s, step / PRODUCTS_PER_LAYER, p->ith, p->nth);
        decode_barrier(s, -1, p->ith, p->nth);
    } else {
        decode_barrier(s, step + 1, p->ith, p->nth);
    }
}

void run_product(pass *p, int step, const row_input *in)
{
    if (p->decode) decode_product(p, step, in);
    else prefill_product(p, step, in);
}

/* ------------------------------------------------------------- rows */

typedef struct {
    pass *p;
    row_step fn;
    const void *arg;
} rows_task;

static void rows_worker(void *ctx, int ith, int nth)
{
    rows_task *t = ctx;
    for (int r = split_point(t->p->n_tok, ith, nth); r < split_point(t->p->n_tok, ith + 1, nth); r++)
        t->fn(t->p, r, t->arg);
}

void run_rows(pass *p, row_step fn, const void *arg)
{
    if (p->decode) fn(p, 0, arg);
    else threads_run(p->s->pool, rows_worker, &(rows_task){p, fn, arg});
}

/* ------------------------------------------------------------- attention */

/* out[0, n) = x rounded to f16 values (n <= MAX_HEAD_DIM), as queries meet the F16 cache. */
static void round_to_f16(const float *x, int n, float *out)
{
    f16_t h[MAX_HEAD_DIM];
    kernels.f32_to_f16_row(n, x, h);
    kernels.f16_to_f32_row(n, h, out);
}

/* Prefill, token t of the chunk: its query prepared in place, its keys and values into the cache. */
static void prepare_token(const pass *p, int t, const void *layer)
{
    model_state *s = p->s;
    const model *m = p->m;
    int il = *(const int *)layer, pos = p->pos0 + t, hd = m->head_dim;
    float *q = s->qkv + (size_t)t * qkv_dim_of(m), *k = q + q_dim_of(m), *v = k + kv_dim_of(m);
    prepare_query(s, il, q, pos);
    for (int kvh = 0; kvh < m->n_head_kv; kvh++) {
        store_key(s, il, kvh, k + (size_t)kvh * hd, pos);
        store_value(s, il, kvh, v + (size_t)kvh * hd, pos);
    }
}

/*
 * Prefill: work items are (KV head, block of tokens): the query rows of every
 * head that shares that KV head, for a few consecutive tokens, go to the
 * kernel together so one pass over the cache serves them all (a block whose
 * tokens see different first keys, past a sliding window, goes a token at a
 * time). K and V are F16 in the cache and queries are rounded to F16 values
 * first, which is what the reference implementation computes; matching it
 * keeps our logits within a hair of the golden ones.
 */
typedef struct {
    pass *p;
    int il, block_tokens;
} attention_task;

/* Tokens per attention work item: up to 32 query rows share each K/V tile
 * (the AVX-512 kernel holds 32 rows in two vector lanes sets). */
static int attention_block_tokens(const model *m)
{
    int group = m->n_head / m->n_head_kv;
    return group >= 32 ? 1 : 32 / group;
}

/* Query rows of tokens [tok0, tok0 + n_tok) for KV head kvh, attending to keys from position first on. */
static void attention_rows(const pass *p, int il, int kvh, int tok0, int n_tok, int first, float *q_rows,
                           float *out_rows, float *scores, int *n_keys)
{
    model_state *s = p->s;
    const model *m = p->m;
    int hd = m->head_dim, group = m->n_head / m->n_head_kv;
    for (int t = 0; t < n_tok; t++)
        for (int g = 0; g < group; g++) {
            const float *q = s->qkv + (size_t)(tok0 + t) * qkv_dim_of(m) + (size_t)(kvh * group + g) * hd;
            round_to_f16(q, hd, q_rows + (size_t)(t * group + g) * hd);
            n_keys[t * group + g] = p->pos0 + tok0 + t - first + 1;
        }
    kernels.attention_block(n_tok * group, n_keys, hd, q_rows, kv_row(s, s->k_cache, il, kvh, first),
                            kv_row(s, s->v_cache, il, kvh, first), (size_t)hd, s->kq_scale, scores,
                            (size_t)s->n_ctx, out_rows);
    for (int t = 0; t < n_tok; t++)
        memcpy(s->att + ((size_t)(tok0 + t) * m->n_head + kvh * group) * hd, out_rows + (size_t)t * group * hd,
               (size_t)group * hd * sizeof(float));
}

static void attention_worker(void *ctx, int ith, int nth)
{
    attention_task *t = ctx;
    const pass *p = t->p;
    model_state *s = p->s;
    const model *m = p->m;
    size_t rows = (size_t)t->block_tokens * (m->n_head / m->n_head_kv);
    float *scores = s->scores + (size_t)ith * s->att_scratch_floats;
    float *q_rows = scores + rows * s->n_ctx, *out_rows = q_rows + rows * m->head_dim;
    int *n_keys = s->n_keys + (size_t)ith * s->att_rows;
    int n_blocks = (p->n_tok + t->block_tokens - 1) / t->block_tokens, n_items = n_blocks * m->n_head_kv;
    /* later tokens see more keys: interleave items so both threads get a fair share */
    for (int i = ith; i < n_items; i += nth) {
        int block = i / m->n_head_kv, kvh = i % m->n_head_kv, tok0 = block * t->block_tokens, first;
        int n_tok = p->n_tok - tok0 < t->block_tokens ? p->n_tok - tok0 : t->block_tokens;
        key_range(s, t->il, p->pos0 + tok0 + n_tok - 1, &first);
        if (first == 0) {
            attention_rows(p, t->il, kvh, tok0, n_tok, 0, q_rows, out_rows, scores, n_keys);
            continue;
        }
        for (int k = 0; k < n_tok; k++) {
            key_range(s, t->il, p->pos0 + tok0 + k, &first);
            attention_rows(p, t->il, kvh, tok0 + k, 1, first, q_rows, out_rows, scores, n_keys);
        }
    }
}

typedef struct {
    model_state *s;
    const float *q; /* every head's query, rounded to f16 values */
    int il, first, n_keys;
} decode_attention_task;

static void decode_scores(const decode_attention_task *t, int ith, int nth)
{
    model_state *s = t->s;
    const model *m = s->m;
    int hd = m->head_dim, group = m->n_head / m->n_head_kv;
    int n_blocks = (t->n_keys + DECODE_KEY_BLOCK - 1) / DECODE_KEY_BLOCK;
    int j0 = split_point(n_blocks, ith, nth) * DECODE_KEY_BLOCK;
    int j1 = split_point(n_blocks, ith + 1, nth) * DECODE_KEY_BLOCK;
    if (j1 > t->n_keys) j1 = t->n_keys;
    if (j0 >= j1) return;
    for (int kvh = 0; kvh < m->n_head_kv; kvh++)
        kernels.attention_scores(group, j1 - j0, hd, t->q + (size_t)kvh * group * hd,
                                 kv_row(s, s->k_cache, t->il, kvh, t->first) + (size_t)j0 * hd, (size_t)hd,
                                 s->kq_scale, s->decode_scores + (size_t)kvh * group * s->n_ctx + j0,
                                 (size_t)s->n_ctx);
}

static void decode_values(const decode_attention_task *t, int ith, int nth)
{
    model_state *s = t->s;
    const model *m = s->m;
    int hd = m->head_dim, group = m->n_head / m->n_head_kv;
    int chunk = hd % DECODE_COLUMN_CHUNK ? hd : DECODE_COLUMN_CHUNK, n_chunks = hd / chunk;
    int i0 = split_point(m->n_head_kv * n_chunks, ith, nth), i1 = split_point(m->n_head_kv * n_chunks, ith + 1, nth);
    while (i0 < i1) { /* one call per run of chunks within one KV head */
        int kvh = i0 / n_chunks, end = (kvh + 1) * n_chunks < i1 ? (kvh + 1) * n_chunks : i1;
        int c0 = (i0 - kvh * n_chunks) * chunk;
        kernels.attention_values(group, t->n_keys, (end - i0) * chunk,
                                 s->decode_scores + (size_t)kvh * group * s->n_ctx, (size_t)s->n_ctx,
                                 kv_row(s, s->v_cache, t->il, kvh, t->first) + c0, (size_t)hd,
                                 s->att + (size_t)kvh * group * hd + c0, (size_t)hd);
        i0 = end;
    }
}

/* The new token's K (prepared) or V row of KV head kvh into the cache. */
static void decode_store_key(model_state *s, int il, int kvh)
{
    float *k = s->qkv + q_dim_of(s->m) + (size_t)kvh * s->m->head_dim;
    store_key(s, il, kvh, k, s->pos);
}

static void decode_store_value(model_state *s, int il, int kvh)
{
    float *v = s->qkv + q_dim_of(s->m) + kv_dim_of(s->m) + (size_t)kvh * s->m->head_dim;
    store_value(s, il, kvh, v, s->pos);
}

/* Thread ith's whole KV heads: the new K and V rows, then every phase for the group's rows. */
static void decode_heads(const decode_attention_task *t, int ith, int nth)
{
    model_state *s = t->s;
    const model *m = s->m;
    int hd = m->head_dim, group = m->n_head / m->n_head_kv;
    for (int kvh = split_point(m->n_head_kv, ith, nth); kvh < split_point(m->n_head_kv, ith + 1, nth); kvh++) {
        decode_store_key(s, t->il, kvh);
        decode_store_value(s, t->il, kvh);
        float *scores = s->decode_scores + (size_t)kvh * group * s->n_ctx;
        kernels.attention_scores(group, t->n_keys, hd, t->q + (size_t)kvh * group * hd,
                                 kv_row(s, s->k_cache, t->il, kvh, t->first), (size_t)hd, s->kq_scale, scores,
                                 (size_t)s->n_ctx);
        for (int g = 0; g < group; g++) kernels.attention_softmax(t->n_keys, scores + (size_t)g * s->n_ctx);
        kernels.attention_values(group, t->n_keys, hd, scores, (size_t)s->n_ctx,
                                 kv_row(s, s->v_cache, t->il, kvh, t->first), (size_t)hd,
                                 s->att + (size_t)kvh * group * hd, (size_t)hd);
    }
}

/* Thread ith's part of decode attention (the barrier after it is the caller's). */
static void decode_attention(const decode_attention_task *t, int ith, int nth)
{
    model_state *s = t->s;
    if (decode_attention_by_heads(s->m, t->n_keys, nth)) {
        decode_heads(t, ith, nth);
        return;
    }
    if (ith == nth - 1) /* its range of keys holds the new position */
        for (int kvh = 0; kvh < s->m->n_head_kv; kvh++) decode_store_key(s, t->il, kvh);
    if (ith == 0) /* read two barriers later */
        for (int kvh = 0; kvh < s->m->n_head_kv; kvh++) decode_store_value(s, t->il, kvh);
    decode_scores(t, ith, nth);
    threads_barrier(s->pool, ith);
    for (int h = split_point(s->m->n_head, ith, nth); h < split_point(s->m->n_head, ith + 1, nth); h++)
        kernels.attention_softmax(t->n_keys, s->decode_scores + (size_t)h * s->n_ctx);
    threads_barrier(s->pool, ith);
    decode_values(t, ith, nth);
}

void run_attention(pass *p, int il)
{
    model_state *s = p->s;
    const model *m = p->m;
    if (!p->decode) {
        run_rows(p, prepare_token, &il);
        threads_run(s->pool, attention_worker, &(attention_task){p, il, attention_block_tokens(m)});
        return;
    }
    /* every thread prepares its own copy of the query */
    decode_scratch *me = p->me;
    int q_dim = q_dim_of(m), first;
    memcpy(me->q, s->qkv, (size_t)q_dim * sizeof(float));
    prepare_query(s, il, me->q, s->pos);
    for (int i = 0; i < q_dim; i += m->head_dim) round_to_f16(me->q + i, m->head_dim, me->q + i);
    int n_keys = key_range(s, il, s->pos, &first);
    decode_attention(&(decode_attention_task){s, me->q, il, first, n_keys}, p->ith, p->nth);
    decode_barrier(s, product_step(il, PRODUCT_O), p->ith, p->nth);
}

/* --------------------------------------------------------------- passes */

typedef struct {
    model_state *s;
    float *logits;
} decode_task;

static void decode_worker(void *ctx, int ith, int nth)
{
    decode_task *d = ctx;
    model_state *s = d->s;
    decode_scratch *me = &s->decode[ith];
    memcpy(me->x, s->x, (size_t)s->m->n_embd * sizeof(float));
    pass p = {.s = s, .m = s->m, .n_tok = 1, .pos0 = s->pos, .out_first = 0, .logits = d->logits, .decode = 1,
              .ith = ith, .nth = nth, .me = me};
    transformer(&p);
}

void schedule_forward(model_state *s, int n, int out_first, float *logits)
{
    if (n == 1) {
        /* the caller lays out the first product's shares, so that a worker
         * that starts late (woken from sleep) can still be helped */
        int nth = threads_count(s->pool);
        for (int i = 0; i < nth; i++) decode_share_init(s, 0, i, nth);
        threads_run(s->pool, decode_worker, &(decode_task){s, logits});
        return;
    }
    pass p = {.s = s, .m = s->m, .n_tok = n, .pos0 = s->pos, .out_first = out_first, .logits = logits};
    transformer(&p);
}

/* ---------------------------------------------------------------- state */

static size_t cache_lines(size_t bytes) { return (bytes + 63) / 64 * 64; }

/* The next `bytes` of a buffer being cut into pieces. */
static void *carve(uint8_t **cursor, size_t bytes)
{
    void *piece = *cursor;
    *cursor += bytes;
    return piece;
}

/* One decode_scratch per thread, each field on its own cache lines. */
static int decode_scratch_new(model_state *s, size_t widest)
{
    const model *m = s->m;
    int nth = threads_count(s->pool);
    size_t x = cache_lines((size_t)m->n_embd * sizeof(float)), in = cache_lines(widest * sizeof(float));
    size_t q = cache_lines((size_t)q_dim_of(m) * sizeof(float));
    size_t act = cache_lines(2 * act_row_size(ACT_F32, (int)widest)); /* both quantized formats */
    size_t per_thread = x + in + q + act;
    s->decode = calloc((size_t)nth, sizeof *s->decode);
    s->decode_mem = aligned_alloc(64, (size_t)nth * per_thread);
    if (!s->decode || !s->decode_mem) return -1;
    uint8_t *cursor = s->decode_mem;
    for (int i = 0; i < nth; i++) {
        decode_scratch *d = &s->decode[i];
        d->x = carve(&cursor, x);
        d->in = carve(&cursor, in);
        d->q = carve(&cursor, q);
        d->act = carve(&cursor, act);
    }
    return 0;
}

int schedule_state_init(model_state *s, size_t widest, int float_weights)
{
    const model *m = s->m;
    int nth = threads_count(s->pool);
    size_t att_rows = (size_t)attention_block_tokens(m) * (m->n_head / m->n_head_kv);
    s->att_scratch_floats = att_rows * ((size_t)s->n_ctx + 2 * m->head_dim);
    s->att_rows = (int)att_rows;
    s->scores = malloc((size_t)nth * s->att_scratch_floats * sizeof(float));
    s->n_keys = malloc((size_t)nth * att_rows * sizeof(int));
    s->decode_scores = malloc((size_t)m->n_head * s->n_ctx * sizeof(float));
    size_t n_shares = (size_t)decode_products(m) * nth;
    s->shares = aligned_alloc(_Alignof(owned_share), n_shares * sizeof(owned_share));
    if (s->shares) memset(s->shares, 0, n_shares * sizeof(owned_share)); /* all empty */
    if (float_weights) { /* only F16/BF16/F32 matrices need the sgemm tiles */
        s->wtile_floats = (size_t)MATMUL_ROW_TILE * widest;
        s->wtile = malloc((size_t)nth * s->wtile_floats * sizeof(float));
        if (!s->wtile) return -1;
    }
    if (!s->scores || !s->n_keys || !s->decode_scores || !s->shares) return -1;
    return decode_scratch_new(s, widest);
}

void schedule_state_free(model_state *s)
{
    free(s->scores);
    free(s->n_keys);
    free(s->decode_scores);
    free(s->shares);
    free(s->decode);
    free(s->decode_mem);
    free(s->wtile);
}
