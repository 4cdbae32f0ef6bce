/*
 * test_gguf.c - the GGUF reader and writer.
 *
 * 1. Every real model and vocabulary in the test data opens, and facts about
 *    stories260K and tiny-qwen2 (read with the independent Python `gguf`
 *    package) match what gguf.c reports.
 * 2. A file written by gguf_writer with every value type, nested arrays and
 *    tensors of several types and shapes reads back identically.
 * 3. Bad input: truncated copies of a real model at every header byte and
 *    through the data, hand-crafted corruptions of every field, random byte
 *    flips. Each must fail with one line that starts with the path (or, for
 *    random flips, may succeed) and never crash: this file runs under ASan.
 *
 * Temporary files live in a mkdtemp directory under /tmp, removed at the end.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

#include "../engine/gguf.h"
#include "../engine/gguf_writer.h"
#include "../engine/quant.h"
#include "../engine/engine.h"
#include "../engine/model.h"
#include "../engine/tokenizer.h"
#include "tiny_model.h"

static char tmp_dir[256];

static const char *tmp_path(const char *name)
{
    static char bufs[4][512];
    static int slot;
    char *b = bufs[slot++ & 3];
    snprintf(b, sizeof bufs[0], "%s/%s", tmp_dir, name);
    return b;
}

static int write_bytes(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    size_t n = fwrite(data, 1, len, fp);
    return (fclose(fp) == 0 && n == len) ? 0 : -1;
}

/* Rewrites an existing file of the same length in place: no truncation, which
 * on ext4 would force a flush to disk each time and make the test slow. */
static int overwrite_bytes(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "r+b");
    if (!fp) return write_bytes(path, data, len);
    size_t n = fwrite(data, 1, len, fp);
    return (fclose(fp) == 0 && n == len) ? 0 : -1;
}

/* Checks a failed open: NULL handle, one line, starting with "path: ", and
 * containing `needle` when given. Returns 1 when all of that holds. */
static int failed_cleanly(const char *path, const char *needle, char *why, size_t whylen)
{
    char err[512] = "";
    gguf_file *f = (gguf_file *)1;
    int rc = gguf_open(&f, path, err, sizeof err);
    size_t plen = strlen(path);
    if (rc == 0) {
        snprintf(why, whylen, "opened successfully");
        gguf_close(f);
        return 0;
    }
    if (f != NULL) return snprintf(why, whylen, "handle not NULL on failure"), 0;
    if (strchr(err, '\n')) return snprintf(why, whylen, "message has a newline: %s", err), 0;
    if (strncmp(err, path, plen) != 0 || strncmp(err + plen, ": ", 2) != 0 || !err[plen + 2])
        return snprintf(why, whylen, "message does not start with the path: %s", err), 0;
    if (needle && !strstr(err, needle)) return snprintf(why, whylen, "'%s' not in: %s", needle, err), 0;
    return 1;
}

#define EXPECT_FAILS(path, needle)                                                                           \
    do {                                                                                                     \
        char why_[600];                                                                                      \
        EXPECT(failed_cleanly((path), (needle), why_, sizeof why_), "%s: %s", (needle) ? (needle) : "", why_); \
    } while (0)

/* Opens or fails the test with the error. */
static gguf_file *open_ok(const char *path)
{
    char err[512];
    gguf_file *f = NULL;
    REQUIRE(gguf_open(&f, path, err, sizeof err) == 0, "gguf_open %s: %s", path, err);
    return f;
}

/* ---- 1. real files ---------------------------------------------------------- */

/* Checks invariants every valid file must satisfy. */
static void check_invariants(const gguf_file *f, const char *name)
{
    EXPECT(f->version == 2 || f->version == 3, "%s: version %u", name, f->version);
    EXPECT(f->alignment && !(f->alignment & (f->alignment - 1)), "%s: alignment", name);
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
        EXPECT(strlen(key) != kv->key.len || gguf_kv_find(f, key) == kv, "%s: key %s not found by name", name, key);
        if (kv->type == GGUF_VALUE_ARRAY && kv->array_type == GGUF_VALUE_STRING)
            EXPECT(kv->strings != NULL || kv->array_len == 0, "%s: %s has no strings", name, key);
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        char tn[256];
        snprintf(tn, sizeof tn, "%.*s", (int)t->name.len, t->name.ptr);
        EXPECT(strlen(tn) != t->name.len || gguf_tensor_find(f, tn) == t, "%s: tensor %s not found by name", name, tn);
        size_t want = quant_row_size(t->type, t->ne[0]) * (size_t)(t->ne[1] * t->ne[2] * t->ne[3]);
        EXPECT(t->nbytes == want && want > 0, "%s: %s nbytes %zu, want %zu", name, tn, t->nbytes, want);
        EXPECT((const uint8_t *)t->data == f->map + f->data_offset + t->offset, "%s: %s data pointer", name, tn);
        EXPECT(f->data_offset + t->offset + t->nbytes <= f->size, "%s: %s out of bounds", name, tn);
        EXPECT(t->offset % f->alignment == 0, "%s: %s misaligned", name, tn);
    }
    EXPECT(gguf_tensor_find(f, "no.such.tensor") == NULL, "%s: found a missing tensor", name);
    EXPECT(gguf_kv_find(f, "no.such.key") == NULL, "%s: found a missing key", name);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Opens every .gguf in testdata/<sub>; returns how many. */
static int open_all_in(const char *sub, int expect_tensors)
{
    DIR *d = opendir(test_data_path(sub));
    if (!d) return 0;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!ends_with(e->d_name, ".gguf")) continue;
        char rel[512], err[512];
        snprintf(rel, sizeof rel, "%s/%s", sub, e->d_name);
        gguf_file *f = NULL;
        if (gguf_open(&f, test_data_path(rel), err, sizeof err) != 0) {
            EXPECT(0, "%s", err);
            continue;
        }
        count++;
        check_invariants(f, e->d_name);
        gguf_str arch;
        const gguf_kv *tokens = gguf_kv_find(f, "tokenizer.ggml.tokens");
        EXPECT(tokens && tokens->type == GGUF_VALUE_ARRAY && tokens->array_type == GGUF_VALUE_STRING &&
                   tokens->array_len > 0,
               "%s: no token list", e->d_name);
        if (expect_tensors) {
            EXPECT(f->n_tensors > 0, "%s: no tensors", e->d_name);
            EXPECT(gguf_get_str(f, "general.architecture", &arch) == 0, "%s: no architecture", e->d_name);
        } else {
            EXPECT(f->n_tensors == 0, "%s: vocab file has tensors", e->d_name);
        }
        gguf_close(f);
    }
    closedir(d);
    return count;
}

static void test_open_all_models(void)
{
    int n = open_all_in("models", 1);
    if (n == 0) SKIP("no models in %s", test_data_path("models"));
    EXPECT(n >= 20, "only %d models opened", n);
}

static void test_open_all_vocabs(void)
{
    int n = open_all_in("vocab", 0);
    if (n == 0) SKIP("no vocab files in %s", test_data_path("vocab"));
    EXPECT(n >= 12, "only %d vocab files opened", n);
}

/* Expected values come from the Python `gguf` package reading the same file. */
static void test_stories260k_facts(void)
{
    const char *path = test_data_path("models/stories260K.gguf");
    if (access(path, R_OK) != 0) SKIP("%s missing", path);
    gguf_file *f = open_ok(path);
    gguf_str s;
    uint32_t u;
    float x;
    EXPECT(f->version == 3 && f->n_tensors == 48 && f->n_kv == 19, "counts %u %llu %llu", f->version,
           (unsigned long long)f->n_tensors, (unsigned long long)f->n_kv);
    EXPECT(f->data_offset == 14176, "data_offset %llu", (unsigned long long)f->data_offset);
    EXPECT(gguf_get_str(f, "general.architecture", &s) == 0 && gguf_str_eq(s, "llama"), "architecture");
    EXPECT(gguf_get_u32(f, "tokenizer.ggml.bos_token_id", &u) == 0 && u == 1, "bos");
    EXPECT(gguf_get_u32(f, "tokenizer.ggml.eos_token_id", &u) == 0 && u == 2, "eos");
    EXPECT(gguf_get_u32(f, "llama.embedding_length", &u) == 0 && u == 64, "embedding_length");
    EXPECT(gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &x) == 0 && x == 1e-5f, "rms eps %g", x);

    const gguf_kv *tok = gguf_kv_find(f, "tokenizer.ggml.tokens");
    REQUIRE(tok && tok->array_type == GGUF_VALUE_STRING && tok->array_len == 512, "tokens");
    EXPECT(gguf_str_eq(tok->strings[0], "<unk>") && gguf_str_eq(tok->strings[2], "</s>") &&
               gguf_str_eq(tok->strings[3], "<0x00>") && gguf_str_eq(tok->strings[300], "\xe2\x96\x81ha"),
           "token strings");
    const gguf_kv *scores = gguf_kv_find(f, "tokenizer.ggml.scores");
    REQUIRE(scores && scores->array_type == GGUF_VALUE_FLOAT32 && scores->array_len == 512, "scores");
    EXPECT(gguf_array_f32(scores, 300) == -41.0f, "score 300 = %g", gguf_array_f32(scores, 300));
    const gguf_kv *types = gguf_kv_find(f, "tokenizer.ggml.token_type");
    REQUIRE(types && types->array_type == GGUF_VALUE_INT32 && types->array_len == 512, "token_type");
    EXPECT(gguf_array_int(types, 3) == 6, "token_type[3] = %lld", (long long)gguf_array_int(types, 3));

    const gguf_tensor *t = gguf_tensor_find(f, "token_embd.weight");
    REQUIRE(t, "token_embd.weight missing");
    EXPECT(t->n_dims == 2 && t->ne[0] == 64 && t->ne[1] == 512 && t->ne[2] == 1 && t->ne[3] == 1, "shape");
    EXPECT(t->type == QT_F32 && t->offset == 0 && t->nbytes == 131072, "type/offset/nbytes");
    float first[3];
    memcpy(first, t->data, sizeof first);
    EXPECT(fabsf(first[0] + 0.29474878f) < 1e-7f && fabsf(first[1] - 0.56189561f) < 1e-7f, "first weights");
    t = gguf_tensor_find(f, "output.weight");
    EXPECT(t && t->offset == 131328, "output.weight offset");
    t = gguf_tensor_find(f, "blk.0.attn_k.weight");
    EXPECT(t && t->ne[0] == 64 && t->ne[1] == 32 && t->offset == 278784 && t->nbytes == 8192, "attn_k");
    gguf_close(f);
}

static void test_qwen2_facts(void)
{
    const char *path = test_data_path("models/tiny-qwen2-Q4_K_M.gguf");
    if (access(path, R_OK) != 0) SKIP("%s missing", path);
    gguf_file *f = open_ok(path);
    const gguf_kv *tok = gguf_kv_find(f, "tokenizer.ggml.tokens");
    REQUIRE(tok && tok->array_len == 50259, "token count");
    EXPECT(gguf_str_eq(tok->strings[50258], "<|im_end|>"), "token 50258");
    gguf_str s;
    EXPECT(gguf_get_str(f, "general.architecture", &s) == 0 && gguf_str_eq(s, "qwen2"), "architecture");
    const gguf_tensor *t = gguf_tensor_find(f, "token_embd.weight");
    EXPECT(t && t->type == QT_Q6_K && t->ne[0] == 256 && t->ne[1] == 50259 && t->offset == 1024 &&
               t->nbytes == 10554390,
           "token_embd.weight");
    t = gguf_tensor_find(f, "blk.0.attn_k.weight");
    EXPECT(t && t->type == QT_Q4_K && t->nbytes == 18432 && t->offset == 10555936, "attn_k");
    EXPECT(f->data_offset == 1768864, "data_offset %llu", (unsigned long long)f->data_offset);
    gguf_close(f);
}

/* ---- 2. writer round trip ----------------------------------------------------- */

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Fills a tensor with bytes that depend on their position. */
static int fill_pattern(void *user, void *buf, uint64_t offset, size_t len)
{
    uint8_t *b = buf;
    for (size_t i = 0; i < len; i++) b[i] = (uint8_t)((offset + i) * 31 + 7);
    (*(int *)user)++;
    return 0;
}

static int fill_fails(void *user, void *buf, uint64_t offset, size_t len) { return -1; }

static void test_writer_roundtrip(void)
{
    gguf_writer *w = gguf_writer_new();
    REQUIRE(w, "writer_new");
    gguf_writer_add_u32(w, "general.alignment", 64);
    gguf_writer_add_u8(w, "v.u8", 250);
    gguf_writer_add_i8(w, "v.i8", -100);
    gguf_writer_add_u16(w, "v.u16", 65000);
    gguf_writer_add_i16(w, "v.i16", -30000);
    gguf_writer_add_u32(w, "v.u32", 4000000000u);
    gguf_writer_add_i32(w, "v.i32", -2000000000);
    gguf_writer_add_u64(w, "v.u64", UINT64_MAX);
    gguf_writer_add_i64(w, "v.i64", INT64_MIN);
    gguf_writer_add_f32(w, "v.f32", 3.5f);
    gguf_writer_add_f64(w, "v.f64", -0.125);
    gguf_writer_add_bool(w, "v.bool", 1);
    gguf_writer_add_bool(w, "v.false", 0);
    gguf_writer_add_str(w, "v.str", "hello, world");
    gguf_writer_add_str(w, "v.empty", "");
    gguf_writer_add_str_n(w, "v.nul", "a\0b", 3);
    const char *strs[] = {"alpha", "", "\xe2\x96\x81gamma"};
    gguf_writer_add_str_array(w, "a.str", strs, 3);
    float fs[] = {1.0f, -2.5f, 1e30f};
    gguf_writer_add_f32_array(w, "a.f32", fs, 3);
    int32_t is[] = {-7, 0, 2147483647};
    gguf_writer_add_i32_array(w, "a.i32", is, 3);
    gguf_writer_add_i32_array(w, "a.empty", NULL, 0);
    uint8_t u64s[16];
    put_le(u64s, 1, 8);
    put_le(u64s + 8, UINT64_MAX, 8);
    gguf_writer_add_array(w, "a.u64", GGUF_VALUE_UINT64, 2, u64s, sizeof u64s);
    uint8_t bools[3] = {1, 0, 1};
    gguf_writer_add_array(w, "a.bool", GGUF_VALUE_BOOL, 3, bools, 3);
    double ds[2] = {0.5, -1e300};
    gguf_writer_add_array(w, "a.f64", GGUF_VALUE_FLOAT64, 2, ds, sizeof ds);
    /* [[1, 2], [], [["x"]]]: an array of arrays (of int16, empty, of string arrays). */
    uint8_t nested[128];
    size_t n = 0;
    put_le(nested + n, GGUF_VALUE_INT16, 4), n += 4;
    put_le(nested + n, 2, 8), n += 8;
    put_le(nested + n, 1, 2), n += 2;
    put_le(nested + n, 2, 2), n += 2;
    put_le(nested + n, GGUF_VALUE_UINT8, 4), n += 4;
    put_le(nested + n, 0, 8), n += 8;
    put_le(nested + n, GGUF_VALUE_ARRAY, 4), n += 4;
    put_le(nested + n, 1, 8), n += 8;
    put_le(nested + n, GGUF_VALUE_STRING, 4), n += 4;
    put_le(nested + n, 1, 8), n += 8;
    put_le(nested + n, 1, 8), n += 8;
    nested[n++] = 'x';
    gguf_writer_add_array(w, "a.nested", GGUF_VALUE_ARRAY, 3, nested, n);
    gguf_writer_add_str(w, "after.nested", "still parsed");

    float f32_data[32 * 3];
    for (int i = 0; i < 32 * 3; i++) f32_data[i] = (float)i * 0.5f - 7.0f;
    int64_t ne_a[] = {32, 3};
    gguf_writer_add_tensor(w, "t.f32", QT_F32, 2, ne_a, f32_data, sizeof f32_data);
    int64_t ne_b[] = {64, 2, 3};
    size_t q4_bytes = gguf_tensor_nbytes(QT_Q4_0, 3, ne_b);
    EXPECT(q4_bytes == 2 * 2 * 3 * 18, "Q4_0 nbytes %zu", q4_bytes);
    int fills = 0;
    gguf_writer_add_tensor_fill(w, "t.q4_0", QT_Q4_0, 3, ne_b, q4_bytes, fill_pattern, &fills);
    int64_t ne_c[] = {16, 1, 2, 2};
    uint16_t f16_data[64];
    for (int i = 0; i < 64; i++) f16_data[i] = (uint16_t)(0x3c00 + i);
    gguf_writer_add_tensor(w, "t.f16", QT_F16, 4, ne_c, f16_data, sizeof f16_data);
    int64_t ne_d[] = {256};
    uint8_t q6k[210];
    for (int i = 0; i < 210; i++) q6k[i] = (uint8_t)(255 - i);
    gguf_writer_add_tensor(w, "t.q6_k", QT_Q6_K, 1, ne_d, q6k, gguf_tensor_nbytes(QT_Q6_K, 1, ne_d));

    char err[512];
    const char *path = tmp_path("roundtrip.gguf");
    REQUIRE(gguf_writer_write(w, path, err, sizeof err) == 0, "write: %s", err);
    EXPECT(fills >= 1, "fill callback not called");
    EXPECT(access(tmp_path("roundtrip.gguf.tmp"), F_OK) != 0, "temporary file left behind");
    gguf_writer_free(w);

    gguf_file *f = open_ok(path);
    check_invariants(f, "roundtrip");
    EXPECT(f->version == 3 && f->n_kv == 25 && f->n_tensors == 4, "counts");
    EXPECT(f->alignment == 64 && f->data_offset % 64 == 0, "alignment %llu", (unsigned long long)f->alignment);

    uint32_t u;
    int64_t i64;
    float x;
    int b;
    gguf_str s;
    EXPECT(gguf_get_u32(f, "v.u8", &u) == 0 && u == 250, "u8");
    EXPECT(gguf_get_i64(f, "v.i8", &i64) == 0 && i64 == -100, "i8");
    EXPECT(gguf_get_u32(f, "v.i8", &u) != 0, "negative i8 as u32");
    EXPECT(gguf_get_u32(f, "v.u16", &u) == 0 && u == 65000, "u16");
    EXPECT(gguf_get_i64(f, "v.i16", &i64) == 0 && i64 == -30000, "i16");
    EXPECT(gguf_get_u32(f, "v.u32", &u) == 0 && u == 4000000000u, "u32");
    EXPECT(gguf_get_i64(f, "v.i32", &i64) == 0 && i64 == -2000000000, "i32");
    EXPECT(gguf_get_u32(f, "v.u64", &u) != 0, "u64 max as u32");
    EXPECT(gguf_get_i64(f, "v.u64", &i64) != 0, "u64 max as i64");
    EXPECT(gguf_get_i64(f, "v.i64", &i64) == 0 && i64 == INT64_MIN, "i64");
    EXPECT(gguf_get_f32(f, "v.f32", &x) == 0 && x == 3.5f, "f32");
    EXPECT(gguf_get_f32(f, "v.f64", &x) == 0 && x == -0.125f, "f64");
    EXPECT(gguf_get_u32(f, "v.f32", &u) != 0, "float as u32");
    EXPECT(gguf_get_bool(f, "v.bool", &b) == 0 && b == 1, "bool");
    EXPECT(gguf_get_bool(f, "v.false", &b) == 0 && b == 0, "false");
    EXPECT(gguf_get_bool(f, "v.u8", &b) != 0, "u8 as bool");
    EXPECT(gguf_get_str(f, "v.str", &s) == 0 && gguf_str_eq(s, "hello, world"), "str");
    EXPECT(!gguf_str_eq(s, "hello, worl") && !gguf_str_eq(s, "hello, world!"), "str_eq prefix");
    EXPECT(gguf_get_str(f, "v.empty", &s) == 0 && s.len == 0 && gguf_str_eq(s, ""), "empty str");
    EXPECT(gguf_get_str(f, "v.nul", &s) == 0 && s.len == 3 && memcmp(s.ptr, "a\0b", 3) == 0, "str with NUL");
    EXPECT(gguf_get_str(f, "v.u32", &s) != 0 && gguf_get_str(f, "a.str", &s) != 0, "non-string as str");
    EXPECT(gguf_get_u32(f, "missing", &u) != 0 && gguf_get_str(f, "missing", &s) != 0, "missing key");
    EXPECT(gguf_get_u32(f, "a.i32", &u) != 0, "array as scalar");
    EXPECT(gguf_get_str(f, "after.nested", &s) == 0 && gguf_str_eq(s, "still parsed"), "key after nested");

    const gguf_kv *kv = gguf_kv_find(f, "a.str");
    REQUIRE(kv && kv->type == GGUF_VALUE_ARRAY && kv->array_type == GGUF_VALUE_STRING && kv->array_len == 3, "a.str");
    for (int i = 0; i < 3; i++) EXPECT(gguf_str_eq(kv->strings[i], strs[i]), "a.str[%d]", i);
    kv = gguf_kv_find(f, "a.f32");
    REQUIRE(kv && kv->array_type == GGUF_VALUE_FLOAT32 && kv->array_len == 3, "a.f32");
    for (int i = 0; i < 3; i++) EXPECT(gguf_array_f32(kv, (uint64_t)i) == fs[i], "a.f32[%d]", i);
    kv = gguf_kv_find(f, "a.i32");
    REQUIRE(kv && kv->array_type == GGUF_VALUE_INT32 && kv->array_len == 3, "a.i32");
    for (int i = 0; i < 3; i++) EXPECT(gguf_array_int(kv, (uint64_t)i) == is[i], "a.i32[%d]", i);
    kv = gguf_kv_find(f, "a.empty");
    EXPECT(kv && kv->type == GGUF_VALUE_ARRAY && kv->array_len == 0, "a.empty");
    kv = gguf_kv_find(f, "a.u64");
    EXPECT(kv && kv->array_len == 2 && gguf_array_int(kv, 0) == 1, "a.u64");
    kv = gguf_kv_find(f, "a.bool");
    EXPECT(kv && kv->array_type == GGUF_VALUE_BOOL && gguf_array_int(kv, 0) == 1 && gguf_array_int(kv, 1) == 0 &&
               gguf_array_int(kv, 2) == 1,
           "a.bool");
    kv = gguf_kv_find(f, "a.f64");
    EXPECT(kv && gguf_array_f32(kv, 0) == 0.5f, "a.f64");
    kv = gguf_kv_find(f, "a.nested");
    REQUIRE(kv && kv->array_type == GGUF_VALUE_ARRAY && kv->array_len == 3 && !kv->strings, "a.nested");
    EXPECT(memcmp(kv->data, nested, n) == 0, "nested array bytes");

    const gguf_tensor *t = gguf_tensor_find(f, "t.f32");
    REQUIRE(t, "t.f32");
    EXPECT(t->type == QT_F32 && t->n_dims == 2 && t->ne[0] == 32 && t->ne[1] == 3 && t->ne[2] == 1, "t.f32 shape");
    EXPECT(t->nbytes == sizeof f32_data && memcmp(t->data, f32_data, sizeof f32_data) == 0, "t.f32 data");
    t = gguf_tensor_find(f, "t.q4_0");
    REQUIRE(t, "t.q4_0");
    EXPECT(t->type == QT_Q4_0 && t->n_dims == 3 && t->ne[0] == 64 && t->ne[1] == 2 && t->ne[2] == 3 && t->ne[3] == 1,
           "t.q4_0 shape");
    EXPECT(t->nbytes == q4_bytes, "t.q4_0 nbytes");
    int pattern_ok = 1;
    for (size_t i = 0; i < t->nbytes; i++)
        if (((const uint8_t *)t->data)[i] != (uint8_t)(i * 31 + 7)) pattern_ok = 0;
    EXPECT(pattern_ok, "t.q4_0 data from the fill callback");
    t = gguf_tensor_find(f, "t.f16");
    REQUIRE(t, "t.f16");
    EXPECT(t->n_dims == 4 && t->ne[2] == 2 && t->ne[3] == 2 && memcmp(t->data, f16_data, sizeof f16_data) == 0, "t.f16");
    t = gguf_tensor_find(f, "t.q6_k");
    REQUIRE(t, "t.q6_k");
    EXPECT(t->nbytes == 210 && memcmp(t->data, q6k, 210) == 0, "t.q6_k");
    for (uint64_t i = 0; i < f->n_tensors; i++)
        EXPECT(f->tensors[i].offset % 64 == 0 && ((uintptr_t)f->tensors[i].data % 64) == 0, "tensor %llu alignment",
               (unsigned long long)i);
    gguf_close(f);
}

static void test_writer_v2_and_no_tensors(void)
{
    gguf_writer *w = gguf_writer_new();
    REQUIRE(w, "writer_new");
    gguf_writer_set_version(w, 2);
    gguf_writer_add_str(w, "general.architecture", "llama");
    char err[512];
    const char *path = tmp_path("v2.gguf");
    REQUIRE(gguf_writer_write(w, path, err, sizeof err) == 0, "write: %s", err);
    gguf_writer_free(w);
    gguf_file *f = open_ok(path);
    EXPECT(f->version == 2 && f->n_kv == 1 && f->n_tensors == 0, "v2 counts");
    gguf_close(f);
    /* Vocab-only files may stop right after the metadata, without padding. */
    size_t len;
    char *buf = test_read_file(path, &len);
    REQUIRE(buf, "read back");
    size_t unpadded = 24 + 8 + strlen("general.architecture") + 4 + 8 + 5;
    REQUIRE(len >= unpadded && len % 32 == 0, "padded length %zu", len);
    REQUIRE(write_bytes(path, buf, unpadded) == 0, "rewrite");
    free(buf);
    f = open_ok(path);
    EXPECT(f->n_kv == 1, "unpadded file");
    gguf_close(f);
    remove(path);
}

static void test_writer_fill_failure(void)
{
    gguf_writer *w = gguf_writer_new();
    REQUIRE(w, "writer_new");
    int64_t ne[] = {32};
    gguf_writer_add_tensor_fill(w, "t", QT_F32, 1, ne, 128, fill_fails, NULL);
    char err[512] = "";
    const char *path = tmp_path("fill_fails.gguf");
    EXPECT(gguf_writer_write(w, path, err, sizeof err) != 0, "write succeeded");
    EXPECT(strstr(err, path) && !strchr(err, '\n'), "message: %s", err);
    EXPECT(access(path, F_OK) != 0 && access(tmp_path("fill_fails.gguf.tmp"), F_OK) != 0, "file left behind");
    gguf_writer_free(w);
    EXPECT(gguf_writer_write(w = gguf_writer_new(), "/nonexistent-dir/x.gguf", err, sizeof err) != 0,
           "write into a missing directory");
    gguf_writer_free(w);
}

/* ---- 3. bad input ------------------------------------------------------------ */

static void test_open_missing_and_directory(void)
{
    EXPECT_FAILS(tmp_path("does-not-exist.gguf"), "No such file");
    EXPECT_FAILS(tmp_dir, "directory");
    EXPECT_FAILS("/dev/null", "regular");
    const char *empty = tmp_path("empty.gguf");
    REQUIRE(write_bytes(empty, "", 0) == 0, "write");
    EXPECT_FAILS(empty, "empty");
    REQUIRE(write_bytes(empty, "GGU", 3) == 0, "write");
    EXPECT_FAILS(empty, "magic");
    remove(empty);
    char err[64] = "x";
    gguf_file *f = NULL;
    EXPECT(gguf_open(&f, NULL, err, sizeof err) != 0 && f == NULL, "NULL path");
    gguf_close(NULL);
}

/* The next (smaller) length to try: ~400 cuts through the tensor data, every
 * byte of the first 4 KB and around the end of the header, every 5th byte in
 * between (the middle of the header is the regular token list). */
static uint64_t next_cut(uint64_t cut, uint64_t header_end, uint64_t len)
{
    uint64_t dense_from = header_end + 64;
    if (cut > dense_from) {
        uint64_t step = (len - header_end) / 400 + 1;
        return cut - step > dense_from ? cut - step : dense_from;
    }
    if (cut > 4096 && cut + 128 < header_end) return cut - 5 > 4096 ? cut - 5 : 4096;
    return cut - 1;
}

/* Truncates a real model at many lengths: every one must fail cleanly. */
static void test_truncated_model(void)
{
    const char *src = test_data_path("models/tiny-llama-Q4_0.gguf");
    size_t len;
    char *buf = test_read_file(src, &len);
    if (!buf) SKIP("%s missing", src);
    const char *path = tmp_path("truncated.gguf");
    if (write_bytes(path, buf, len) != 0) {
        free(buf);
        REQUIRE(0, "write copy");
    }
    free(buf);
    gguf_file *f = open_ok(path);
    uint64_t end = 0, header_end = f->data_offset;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        uint64_t e = f->data_offset + f->tensors[i].offset + f->tensors[i].nbytes;
        if (e > end) end = e;
    }
    gguf_close(f);
    REQUIRE(end == len, "last tensor ends at %llu, file is %zu bytes", (unsigned long long)end, len);

    /* Descending, so each step is one truncate() of the same file. */
    int failures = 0, tried = 0;
    uint64_t cut = len - 1;
    while (1) {
        if (truncate(path, (off_t)cut) != 0) {
            EXPECT(0, "truncate");
            break;
        }
        char why[600];
        tried++;
        if (!failed_cleanly(path, NULL, why, sizeof why)) {
            if (failures++ < 3) EXPECT(0, "cut at %llu: %s", (unsigned long long)cut, why);
        }
        if (cut == 0) break;
        cut = next_cut(cut, header_end, len);
    }
    EXPECT(tried > 4096 + 400, "only %d cuts", tried);
    remove(path);
}

/* A small valid file for the hand-crafted corruptions. */
static char *base_file(size_t *len)
{
    gguf_writer *w = gguf_writer_new();
    if (!w) return NULL;
    gguf_writer_add_str(w, "general.architecture", "llama");
    const char *toks[] = {"a", "bb", "ccc"};
    gguf_writer_add_str_array(w, "tokenizer.ggml.tokens", toks, 3);
    static float a[32 * 4];
    static uint8_t q[2 * 2 * 18];
    int64_t ne_a[] = {32, 4}, ne_b[] = {64, 2};
    gguf_writer_add_tensor(w, "tensor_a", QT_F32, 2, ne_a, a, sizeof a);
    gguf_writer_add_tensor(w, "tensor_b", QT_Q4_0, 2, ne_b, q, sizeof q);
    char err[512];
    const char *path = tmp_path("base.gguf");
    int rc = gguf_writer_write(w, path, err, sizeof err);
    gguf_writer_free(w);
    return rc == 0 ? test_read_file(path, len) : NULL;
}

/* Offset of a field of tensor info `name` (found by its length-prefixed name). */
static size_t tensor_field(const char *buf, size_t len, const char *name, const char *field)
{
    uint8_t pat[72];
    size_t n = strlen(name);
    put_le(pat, n, 8);
    memcpy(pat + 8, name, n);
    const char *p = memmem(buf, len, pat, 8 + n);
    if (!p) return 0;
    size_t at = (size_t)(p - buf) + 8 + n;
    if (strcmp(field, "n_dims") == 0) return at;
    uint32_t n_dims;
    memcpy(&n_dims, buf + at, 4);
    if (strcmp(field, "ne0") == 0) return at + 4;
    if (strcmp(field, "ne1") == 0) return at + 12;
    if (strcmp(field, "type") == 0) return at + 4 + 8 * n_dims;
    return at + 8 + 8 * n_dims; /* offset */
}

typedef struct {
    const char *what;
    size_t at;     /* byte offset to patch */
    uint64_t val;  /* little-endian value written there */
    int width;     /* 4 or 8 bytes */
    const char *needle;
} patch;

static void test_patched_corruptions(void)
{
    size_t len;
    char *base = base_file(&len);
    REQUIRE(base, "base file");
    size_t a_ne1 = tensor_field(base, len, "tensor_a", "ne1"), b_ne0 = tensor_field(base, len, "tensor_b", "ne0");
    size_t b_type = tensor_field(base, len, "tensor_b", "type"), b_off = tensor_field(base, len, "tensor_b", "offset");
    size_t a_dims = tensor_field(base, len, "tensor_a", "n_dims");
    uint64_t b_offset;
    memcpy(&b_offset, base + b_off, 8);
    const patch patches[] = {
        {"bad magic", 0, 0x4c4d4747 /* "GGML" */, 4, "magic"},
        {"version 1", 4, 1, 4, "version 1"},
        {"version 99", 4, 99, 4, "version 99"},
        {"version 0", 4, 0, 4, "version 0"},
        {"big-endian", 4, 0x03000000, 4, "big-endian"},
        {"absurd n_tensors", 8, 1ull << 60, 8, "tensors"},
        {"absurd n_kv", 16, 1ull << 60, 8, "metadata keys"},
        {"n_kv max", 16, UINT64_MAX, 8, "metadata keys"},
        {"absurd key length", 24, 1ull << 62, 8, "truncated in metadata key 0"},
        {"key length max", 24, UINT64_MAX, 8, "truncated"},
        {"unknown value type", 24 + 8 + 20, 13, 4, "unknown value type 13"},
        {"value type max", 24 + 8 + 20, UINT32_MAX, 4, "unknown value type"},
        {"absurd string length", 24 + 8 + 20 + 4, 1ull << 62, 8, "truncated in metadata key 0 (general.architecture)"},
        {"n_dims 5", a_dims, 5, 4, "tensor_a has 5 dimensions"},
        {"n_dims max", a_dims, UINT32_MAX, 4, "dimensions"},
        {"dim 0", a_ne1, 0, 8, "size 0"},
        {"dim negative", a_ne1, (uint64_t)-4, 8, "tensor_a"},
        {"dims overflow", a_ne1, 1ull << 62, 8, "overflow"},
        {"unknown type", b_type, 99, 4, "unknown type id 99"},
        {"unsupported type", b_type, 16, 4, "IQ2_XXS"},
        {"row not whole blocks", b_ne0, 48, 8, "block size"},
        {"misaligned offset", b_off, b_offset + 1, 8, "not a multiple of the alignment"},
        {"offset past EOF", b_off, b_offset + 4096, 8, "tensor_b extends past end of file"},
        {"offset near 2^64", b_off, UINT64_MAX - 31, 8, "tensor_b extends past end of file"},
        {"size past EOF", b_ne0, 64 * 32, 8, "tensor_b extends past end of file"},
        {"tensor_b on tensor_a's bytes", b_off, 0, 8, "overlap"},
        {"tensor_b inside tensor_a", b_off, 64, 8, "overlap"},
    };
    REQUIRE(a_ne1 && b_ne0 && b_type && b_off && a_dims, "tensor infos not found");
    const char *path = tmp_path("patched.gguf");
    for (size_t i = 0; i < sizeof patches / sizeof patches[0]; i++) {
        const patch *p = &patches[i];
        char *buf = malloc(len);
        REQUIRE(buf, "malloc");
        memcpy(buf, base, len);
        put_le((uint8_t *)buf + p->at, p->val, p->width);
        int ok = write_bytes(path, buf, len) == 0;
        free(buf);
        REQUIRE(ok, "write");
        char why[600];
        EXPECT(failed_cleanly(path, p->needle, why, sizeof why), "%s: %s", p->what, why);
    }
    free(base);
    remove(path);
}

/* A model whose seven matrices all point at one range of the file: the
 * loader would repack each into its own copy, so memory would grow with the
 * tensor count instead of the file. Refused at open, with both names. */
static void test_aliased_matrices_refused(void)
{
    const char *path = tmp_path("aliased.gguf");
    const char *tokens[] = {"b"};
    char err[512];
    REQUIRE(tiny_model_write(path, tokens, 1, 4, 16, err, sizeof err) == 0, "%s", err);
    size_t len;
    char *buf = test_read_file(path, &len);
    REQUIRE(buf, "read");
    engine *e;
    engine_params params = {.n_threads = 1};
    REQUIRE(engine_open(&e, path, &params, err, sizeof err) == 0, "the unpatched model must load: %s", err);
    engine_close(e);
    static const char *const names[] = {"blk.0.attn_k.weight", "blk.0.attn_v.weight", "blk.0.attn_output.weight",
                                        "blk.0.ffn_gate.weight", "blk.0.ffn_up.weight", "blk.0.ffn_down.weight"};
    uint64_t q_offset;
    size_t q_at = tensor_field(buf, len, "blk.0.attn_q.weight", "offset");
    REQUIRE(q_at, "attn_q not found");
    memcpy(&q_offset, buf + q_at, 8);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t at = tensor_field(buf, len, names[i], "offset");
        REQUIRE(at, "%s not found", names[i]);
        put_le((uint8_t *)buf + at, q_offset, 8);
    }
    REQUIRE(write_bytes(path, buf, len) == 0, "write");
    free(buf);
    char why[600];
    EXPECT(failed_cleanly(path, "overlap", why, sizeof why), "%s", why);
    EXPECT(engine_open(&e, path, &params, err, sizeof err) != 0 && strstr(err, "blk.0.") && strstr(err, "overlap"),
           "engine_open: %s", err);
    remove(path);
}

/* Writes a file with the writer after `build` adds to it, expects failure. */
static void expect_built_file_fails(const char *what, void (*build)(gguf_writer *), const char *needle)
{
    gguf_writer *w = gguf_writer_new();
    REQUIRE(w, "writer_new");
    build(w);
    char err[512], why[600];
    const char *path = tmp_path("crafted.gguf");
    int rc = gguf_writer_write(w, path, err, sizeof err);
    gguf_writer_free(w);
    REQUIRE(rc == 0, "%s: write: %s", what, err);
    EXPECT(failed_cleanly(path, needle, why, sizeof why), "%s: %s", what, why);
    remove(path);
}

static float small_f32[64];

static void build_align_0(gguf_writer *w) { gguf_writer_add_u32(w, "general.alignment", 0); }
static void build_align_3(gguf_writer *w) { gguf_writer_add_u32(w, "general.alignment", 3); }
static void build_align_str(gguf_writer *w) { gguf_writer_add_str(w, "general.alignment", "32"); }
static void build_dup_key(gguf_writer *w)
{
    gguf_writer_add_u32(w, "llama.block_count", 1);
    gguf_writer_add_str(w, "x", "y");
    gguf_writer_add_u32(w, "llama.block_count", 2);
}
static void build_dup_tensor(gguf_writer *w)
{
    int64_t ne[] = {32};
    gguf_writer_add_tensor(w, "blk.0.w", QT_F32, 1, ne, small_f32, 128);
    gguf_writer_add_tensor(w, "blk.0.w", QT_F32, 1, ne, small_f32, 128);
}
static void build_array_len(gguf_writer *w)
{
    uint8_t v[12];
    put_le(v, GGUF_VALUE_INT32, 4);
    put_le(v + 4, 1ull << 61, 8);
    gguf_writer_add_raw(w, "tokenizer.ggml.token_type", GGUF_VALUE_ARRAY, v, sizeof v);
}
static void build_string_array_len(gguf_writer *w)
{
    uint8_t v[12];
    put_le(v, GGUF_VALUE_STRING, 4);
    put_le(v + 4, UINT64_MAX, 8);
    gguf_writer_add_raw(w, "tokenizer.ggml.tokens", GGUF_VALUE_ARRAY, v, sizeof v);
}
static void build_string_in_array_len(gguf_writer *w)
{
    uint8_t v[20];
    put_le(v, GGUF_VALUE_STRING, 4);
    put_le(v + 4, 1, 8);
    put_le(v + 12, 1ull << 50, 8);
    gguf_writer_add_raw(w, "tokenizer.ggml.tokens", GGUF_VALUE_ARRAY, v, sizeof v);
}
static void build_nested_array_len(gguf_writer *w)
{
    uint8_t v[24];
    put_le(v, GGUF_VALUE_ARRAY, 4);
    put_le(v + 4, 1, 8);
    put_le(v + 12, GGUF_VALUE_UINT8, 4);
    put_le(v + 16, 1ull << 40, 8);
    gguf_writer_add_raw(w, "nested", GGUF_VALUE_ARRAY, v, sizeof v);
}
static void build_array_elem_type(gguf_writer *w) { gguf_writer_add_array(w, "weird", 77, 0, NULL, 0); }
static void build_deep_nesting(gguf_writer *w)
{
    uint8_t v[12 * 40];
    for (int i = 0; i < 40; i++) {
        put_le(v + 12 * i, i == 39 ? GGUF_VALUE_UINT8 : GGUF_VALUE_ARRAY, 4);
        put_le(v + 12 * i + 4, i == 39 ? 0 : 1, 8);
    }
    gguf_writer_add_raw(w, "deep", GGUF_VALUE_ARRAY, v, sizeof v);
}
static void build_n_dims_5(gguf_writer *w)
{
    int64_t ne[] = {32, 1, 1, 1, 1};
    gguf_writer_add_tensor(w, "five", QT_F32, 5, ne, small_f32, 128);
}
static void build_dim_0(gguf_writer *w)
{
    int64_t ne[] = {32, 0};
    gguf_writer_add_tensor(w, "empty", QT_F32, 2, ne, NULL, 0);
}
static void build_dims_overflow(gguf_writer *w)
{
    int64_t ne[] = {32, 1ll << 40, 1ll << 40};
    gguf_writer_add_tensor(w, "huge", QT_F32, 3, ne, small_f32, 128);
}
static void build_bytes_overflow(gguf_writer *w)
{
    int64_t ne[] = {1ll << 31, 1ll << 31}; /* 2^62 elements fit, 2^64 bytes do not */
    gguf_writer_add_tensor(w, "huge", QT_F32, 2, ne, small_f32, 128);
}
static void build_short_data(gguf_writer *w)
{
    int64_t ne[] = {32, 2};
    gguf_writer_add_tensor(w, "blk.3.ffn_up.weight", QT_F32, 2, ne, small_f32, 128); /* 256 needed */
}
static void build_unsupported(gguf_writer *w)
{
    int64_t ne[] = {256};
    gguf_writer_add_tensor(w, "iq", 19 /* IQ1_S */, 1, ne, small_f32, 64);
}

static void test_crafted_corruptions(void)
{
    expect_built_file_fails("alignment 0", build_align_0, "alignment");
    expect_built_file_fails("alignment 3", build_align_3, "power of two");
    expect_built_file_fails("alignment as string", build_align_str, "general.alignment");
    expect_built_file_fails("duplicate key", build_dup_key, "duplicate metadata key llama.block_count");
    expect_built_file_fails("duplicate tensor", build_dup_tensor, "duplicate tensor name blk.0.w");
    expect_built_file_fails("absurd array length", build_array_len, "tokenizer.ggml.token_type");
    expect_built_file_fails("absurd string array length", build_string_array_len, "tokenizer.ggml.tokens");
    expect_built_file_fails("absurd string in array", build_string_in_array_len, "truncated");
    expect_built_file_fails("absurd nested array length", build_nested_array_len, "nested");
    expect_built_file_fails("unknown array element type", build_array_elem_type, "77");
    expect_built_file_fails("deep nesting", build_deep_nesting, "nested deeper");
    expect_built_file_fails("n_dims 5", build_n_dims_5, "5 dimensions");
    expect_built_file_fails("dim 0", build_dim_0, "size 0");
    expect_built_file_fails("element count overflow", build_dims_overflow, "overflow");
    expect_built_file_fails("byte size overflow", build_bytes_overflow, "huge");
    expect_built_file_fails("data past EOF", build_short_data, "tensor blk.3.ffn_up.weight extends past end of file");
    expect_built_file_fails("unsupported IQ1_S", build_unsupported, "IQ1_S");
}

/* xorshift64*: deterministic pseudo-random numbers for the flip test. */
static uint64_t next_random(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* Random byte changes in the header must never crash; failures must be clean. */
static void test_random_header_flips(void)
{
    size_t len;
    char *base = base_file(&len);
    REQUIRE(base, "base file");
    char *buf = malloc(len);
    REQUIRE(buf, "malloc");
    const char *path = tmp_path("flipped.gguf");
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    size_t header = len > 320 ? 320 : len;
    int opened = 0, failed = 0;
    for (int iter = 0; iter < 1500; iter++) {
        memcpy(buf, base, len);
        int flips = 1 + (int)(next_random(&seed) % 3);
        for (int k = 0; k < flips; k++) {
            uint64_t r = next_random(&seed);
            size_t at = (size_t)(r % header);
            buf[at] = (r >> 32) & 1 ? (char)(r >> 40) : (char)(buf[at] ^ (1 << ((r >> 40) & 7)));
        }
        if (overwrite_bytes(path, buf, len) != 0) break;
        char err[512];
        gguf_file *f = NULL;
        if (gguf_open(&f, path, err, sizeof err) == 0) {
            opened++;
            check_invariants(f, "flipped");
            gguf_close(f);
        } else {
            failed++;
            EXPECT(!strchr(err, '\n') && strncmp(err, path, strlen(path)) == 0, "bad message: %s", err);
        }
    }
    EXPECT(opened + failed == 1500 && failed > 100, "opened %d, failed %d", opened, failed);
    free(buf);
    free(base);
    remove(path);
    remove(tmp_path("base.gguf"));
}

/* Names a file gives (architecture, tokenizer model) are quoted in errors as
 * printable ASCII: a line break in them made a two-line error (fuzz_gguf). */
static void test_names_in_errors_are_one_line(void)
{
    const char *path = tmp_path("names.gguf");
    gguf_writer *w = gguf_writer_new();
    REQUIRE(w, "out of memory");
    gguf_writer_add_str(w, "general.architecture", "l\nx\x01");
    gguf_writer_add_str(w, "tokenizer.ggml.model", "a\r\nb");
    char err[512] = "";
    REQUIRE(gguf_writer_write(w, path, err, sizeof err) == 0, "write: %s", err);
    gguf_writer_free(w);
    gguf_file *f = NULL;
    REQUIRE(gguf_open(&f, path, err, sizeof err) == 0, "open: %s", err);
    model m;
    err[0] = 0;
    EXPECT(model_load(&m, f, err, sizeof err) != 0 && strstr(err, "unsupported architecture 'l?x?'"), "model: %s",
           err);
    tokenizer *t = NULL;
    err[0] = 0;
    EXPECT(tokenizer_load(&t, f, err, sizeof err) != 0 && strstr(err, "tokenizer model 'a??b'"), "tokenizer: %s", err);
    gguf_close(f);
    remove(path);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/prbot-test-gguf-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmp_dir)) {
        printf("FAIL test_gguf: mkdtemp failed\n");
        return 1;
    }
    TEST_RUN(test_open_all_models);
    TEST_RUN(test_open_all_vocabs);
    TEST_RUN(test_stories260k_facts);
    TEST_RUN(test_qwen2_facts);
    TEST_RUN(test_writer_roundtrip);
    TEST_RUN(test_writer_v2_and_no_tensors);
    TEST_RUN(test_writer_fill_failure);
    TEST_RUN(test_open_missing_and_directory);
    TEST_RUN(test_truncated_model);
    TEST_RUN(test_patched_corruptions);
    TEST_RUN(test_aliased_matrices_refused);
    TEST_RUN(test_crafted_corruptions);
    TEST_RUN(test_random_header_flips);
    TEST_RUN(test_names_in_errors_are_one_line);
    remove(tmp_path("roundtrip.gguf"));
    if (rmdir(tmp_dir) != 0) printf("FAIL cleanup: %s not empty\n", tmp_dir);
    return test_exit_code();
}
