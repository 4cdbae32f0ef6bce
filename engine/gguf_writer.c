/*
 * gguf_writer.c - builds a GGUF file: header and metadata in memory, tensor
 * data streamed straight to disk.
 *
 * Every added key/value is encoded at once into its own little byte buffer
 * (exactly the bytes the file will hold), so writing the header is one pass
 * of concatenation. Tensor infos keep the shape and a pointer (or a fill
 * callback) for the data; offsets are assigned at write time, each tensor
 * starting on the alignment boundary, with zero padding between. The file is
 * written to "path.tmp" and renamed over `path` only when complete, so a
 * reader never sees a half-written model.
 */
#include "gguf_writer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "quant.h"

#define WRITER_DEFAULT_ALIGNMENT 32
#define WRITER_FILL_CHUNK (4u << 20)

typedef struct {
    uint8_t *data;
    size_t len, cap;
    int oom;
} bytes;

typedef struct {
    char *key;
    bytes value; /* type id + value, as in the file */
} writer_kv;

typedef struct {
    char *name;
    uint32_t type, n_dims;
    int64_t *ne;
    const void *data;
    gguf_fill_fn fill;
    void *user;
    size_t nbytes;
} writer_tensor;

struct gguf_writer {
    uint32_t version;
    int oom;
    writer_kv *kv;
    size_t n_kv, cap_kv;
    writer_tensor *tensors;
    size_t n_tensors, cap_tensors;
};

/* ---- byte buffers ----------------------------------------------------------- */

static void put(bytes *b, const void *p, size_t n)
{
    if (b->oom) return;
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            cap *= 2;
        }
        uint8_t *d = realloc(b->data, cap);
        if (!d) {
            b->oom = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void put_u32(bytes *b, uint32_t v)
{
    uint8_t p[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, p, 4);
}

static void put_u64(bytes *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static void put_str(bytes *b, const char *s, size_t len)
{
    put_u64(b, len);
    put(b, s, len);
}

/* ---- building ---------------------------------------------------------------- */

gguf_writer *gguf_writer_new(void)
{
    gguf_writer *w = calloc(1, sizeof *w);
    if (w) w->version = 3;
    return w;
}

void gguf_writer_free(gguf_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].value.data);
    }
    for (size_t i = 0; i < w->n_tensors; i++) {
        free(w->tensors[i].name);
        free(w->tensors[i].ne);
    }
    free(w->kv);
    free(w->tensors);
    free(w);
}

void gguf_writer_set_version(gguf_writer *w, uint32_t version) { w->version = version; }

/* Grows an array of `size`-byte items so one more fits. */
static int grow(void **items, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) return 0;
    size_t new_cap = *cap ? *cap * 2 : 16;
    void *p = realloc(*items, new_cap * size);
    if (!p) return -1;
    *items = p;
    *cap = new_cap;
    return 0;
}

/* Appends a key whose value bytes (type id first) are in v; takes v over. */
static int add_kv(gguf_writer *w, const char *key, bytes v)
{
    char *k = strdup(key);
    if (v.oom || !k || grow((void **)&w->kv, &w->cap_kv, w->n_kv, sizeof *w->kv)) {
        free(k);
        free(v.data);
        w->oom = 1;
        return -1;
    }
    w->kv[w->n_kv].key = k;
    w->kv[w->n_kv].value = v;
    w->n_kv++;
    return 0;
}

static int add_scalar(gguf_writer *w, const char *key, uint32_t type, const void *le_bytes, size_t n)
{
    bytes v = {0};
    put_u32(&v, type);
    put(&v, le_bytes, n);
    return add_kv(w, key, v);
}

/* x86-64 and AArch64 are little-endian, so a value's memory is its file encoding. */
int gguf_writer_add_u8(gguf_writer *w, const char *key, uint8_t x) { return add_scalar(w, key, GGUF_VALUE_UINT8, &x, 1); }
int gguf_writer_add_i8(gguf_writer *w, const char *key, int8_t x) { return add_scalar(w, key, GGUF_VALUE_INT8, &x, 1); }
int gguf_writer_add_u16(gguf_writer *w, const char *key, uint16_t x) { return add_scalar(w, key, GGUF_VALUE_UINT16, &x, 2); }
int gguf_writer_add_i16(gguf_writer *w, const char *key, int16_t x) { return add_scalar(w, key, GGUF_VALUE_INT16, &x, 2); }
int gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t x) { return add_scalar(w, key, GGUF_VALUE_UINT32, &x, 4); }
int gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t x) { return add_scalar(w, key, GGUF_VALUE_INT32, &x, 4); }
int gguf_writer_add_u64(gguf_writer *w, const char *key, uint64_t x) { return add_scalar(w, key, GGUF_VALUE_UINT64, &x, 8); }
int gguf_writer_add_i64(gguf_writer *w, const char *key, int64_t x) { return add_scalar(w, key, GGUF_VALUE_INT64, &x, 8); }
int gguf_writer_add_f32(gguf_writer *w, const char *key, float x) { return add_scalar(w, key, GGUF_VALUE_FLOAT32, &x, 4); }
int gguf_writer_add_f64(gguf_writer *w, const char *key, double x) { return add_scalar(w, key, GGUF_VALUE_FLOAT64, &x, 8); }

int gguf_writer_add_bool(gguf_writer *w, const char *key, int x)
{
    uint8_t b = x != 0;
    return add_scalar(w, key, GGUF_VALUE_BOOL, &b, 1);
}

int gguf_writer_add_str_n(gguf_writer *w, const char *key, const char *s, size_t len)
{
    bytes v = {0};
    put_u32(&v, GGUF_VALUE_STRING);
    put_str(&v, s, len);
    return add_kv(w, key, v);
}

int gguf_writer_add_str(gguf_writer *w, const char *key, const char *s)
{
    return gguf_writer_add_str_n(w, key, s, strlen(s));
}

int gguf_writer_add_array(gguf_writer *w, const char *key, uint32_t elem_type, uint64_t n, const void *elems,
                          size_t elems_len)
{
    bytes v = {0};
    put_u32(&v, GGUF_VALUE_ARRAY);
    put_u32(&v, elem_type);
    put_u64(&v, n);
    put(&v, elems, elems_len);
    return add_kv(w, key, v);
}

int gguf_writer_add_str_array(gguf_writer *w, const char *key, const char *const *s, size_t n)
{
    bytes v = {0};
    put_u32(&v, GGUF_VALUE_ARRAY);
    put_u32(&v, GGUF_VALUE_STRING);
    put_u64(&v, n);
    for (size_t i = 0; i < n; i++) put_str(&v, s[i], strlen(s[i]));
    return add_kv(w, key, v);
}

int gguf_writer_add_f32_array(gguf_writer *w, const char *key, const float *x, size_t n)
{
    if (n > SIZE_MAX / 4) return w->oom = 1, -1;
    return gguf_writer_add_array(w, key, GGUF_VALUE_FLOAT32, n, x, n * 4);
}

int gguf_writer_add_i32_array(gguf_writer *w, const char *key, const int32_t *x, size_t n)
{
    if (n > SIZE_MAX / 4) return w->oom = 1, -1;
    return gguf_writer_add_array(w, key, GGUF_VALUE_INT32, n, x, n * 4);
}

int gguf_writer_add_raw(gguf_writer *w, const char *key, uint32_t type, const void *value, size_t len)
{
    bytes v = {0};
    put_u32(&v, type);
    put(&v, value, len);
    return add_kv(w, key, v);
}

static int add_tensor_common(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne,
                             size_t nbytes, const void *data, gguf_fill_fn fill, void *user)
{
    char *nm = strdup(name);
    int64_t *dims = malloc((n_dims ? n_dims : 1) * sizeof *dims);
    if (!nm || !dims || grow((void **)&w->tensors, &w->cap_tensors, w->n_tensors, sizeof *w->tensors)) {
        free(nm);
        free(dims);
        w->oom = 1;
        return -1;
    }
    if (n_dims) memcpy(dims, ne, n_dims * sizeof *dims);
    w->tensors[w->n_tensors++] = (writer_tensor){
        .name = nm, .type = type, .n_dims = n_dims, .ne = dims, .data = data, .fill = fill, .user = user,
        .nbytes = nbytes};
    return 0;
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne,
                           const void *data, size_t nbytes)
{
    return add_tensor_common(w, name, type, n_dims, ne, nbytes, data, NULL, NULL);
}

int gguf_writer_add_tensor_fill(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                const int64_t *ne, size_t nbytes, gguf_fill_fn fill, void *user)
{
    return add_tensor_common(w, name, type, n_dims, ne, nbytes, NULL, fill, user);
}

size_t gguf_tensor_nbytes(uint32_t type, uint32_t n_dims, const int64_t *ne)
{
    const quant_traits *q = quant_traits_of(type);
    if (!q || n_dims < 1 || n_dims > GGUF_MAX_DIMS || ne[0] < 1 || ne[0] % q->block_size) return 0;
    size_t n = quant_row_size(type, ne[0]);
    for (uint32_t d = 1; d < n_dims; d++)
        if (ne[d] < 1 || __builtin_mul_overflow(n, (size_t)ne[d], &n)) return 0;
    return n;
}

/* ---- writing ----------------------------------------------------------------- */

/* The alignment the reader will use: a valid uint32 general.alignment, else 32. */
static uint64_t writer_alignment(const gguf_writer *w)
{
    for (size_t i = 0; i < w->n_kv; i++) {
        const bytes *v = &w->kv[i].value;
        uint32_t type, a;
        if (strcmp(w->kv[i].key, "general.alignment") != 0 || v->len != 8) continue;
        memcpy(&type, v->data, 4);
        memcpy(&a, v->data + 4, 4);
        if (type == GGUF_VALUE_UINT32 && a && !(a & (a - 1))) return a;
    }
    return WRITER_DEFAULT_ALIGNMENT;
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/* Encodes magic, counts, metadata and tensor infos (with their offsets). */
static void encode_header(const gguf_writer *w, uint64_t alignment, bytes *h)
{
    put(h, "GGUF", 4);
    put_u32(h, w->version);
    put_u64(h, w->n_tensors);
    put_u64(h, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        put_str(h, w->kv[i].key, strlen(w->kv[i].key));
        put(h, w->kv[i].value.data, w->kv[i].value.len);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const writer_tensor *t = &w->tensors[i];
        put_str(h, t->name, strlen(t->name));
        put_u32(h, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) put_u64(h, (uint64_t)t->ne[d]);
        put_u32(h, t->type);
        put_u64(h, offset);
        offset = align_up(offset + t->nbytes, alignment);
    }
}

static int write_zeros(FILE *fp, uint64_t n)
{
    static const uint8_t zeros[256];
    while (n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        if (fwrite(zeros, 1, k, fp) != k) return -1;
        n -= k;
    }
    return 0;
}

/* Row size when the shape divides evenly, so fill chunks are whole rows. */
static size_t fill_unit(const writer_tensor *t)
{
    size_t row = t->n_dims >= 1 ? quant_row_size(t->type, t->ne[0]) : 0;
    return row && t->nbytes % row == 0 ? row : 1;
}

static int write_tensor_data(FILE *fp, const writer_tensor *t, char *err, size_t errlen, const char *path)
{
    if (!t->fill) {
        if (t->nbytes && (!t->data || fwrite(t->data, 1, t->nbytes, fp) != t->nbytes)) {
            err_set(err, errlen, "%s: cannot write tensor %s: %s", path, t->name,
                     t->data ? strerror(errno) : "no data given");
            return -1;
        }
        return 0;
    }
    size_t unit = fill_unit(t);
    size_t chunk = unit >= WRITER_FILL_CHUNK ? unit : WRITER_FILL_CHUNK / unit * unit;
    if (chunk > t->nbytes) chunk = t->nbytes;
    void *buf = malloc(chunk ? chunk : 1);
    if (!buf) {
        err_set(err, errlen, "%s: out of memory for tensor %s", path, t->name);
        return -1;
    }
    for (size_t off = 0; off < t->nbytes; off += chunk) {
        size_t n = t->nbytes - off < chunk ? t->nbytes - off : chunk;
        if (t->fill(t->user, buf, off, n) != 0) {
            err_set(err, errlen, "%s: producing the data of tensor %s failed", path, t->name);
            free(buf);
            return -1;
        }
        if (fwrite(buf, 1, n, fp) != n) {
            err_set(err, errlen, "%s: cannot write tensor %s: %s", path, t->name, strerror(errno));
            free(buf);
            return -1;
        }
    }
    free(buf);
    return 0;
}

static int write_body(FILE *fp, const gguf_writer *w, const bytes *header, uint64_t alignment, const char *path,
                      char *err, size_t errlen)
{
    if (fwrite(header->data, 1, header->len, fp) != header->len ||
        write_zeros(fp, align_up(header->len, alignment) - header->len)) {
        err_set(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < w->n_tensors; i++) {
        const writer_tensor *t = &w->tensors[i];
        if (write_tensor_data(fp, t, err, errlen, path)) return -1;
        if (write_zeros(fp, align_up(t->nbytes, alignment) - t->nbytes)) {
            err_set(err, errlen, "%s: cannot write: %s", path, strerror(errno));
            return -1;
        }
    }
    return 0;
}

int gguf_writer_write(gguf_writer *w, const char *path, char *err, size_t errlen)
{
    if (w->oom) {
        err_set(err, errlen, "%s: out of memory while building the GGUF file", path);
        return -1;
    }
    uint64_t alignment = writer_alignment(w);
    bytes header = {0};
    encode_header(w, alignment, &header);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (header.oom || !tmp) {
        free(header.data);
        free(tmp);
        err_set(err, errlen, "%s: out of memory while building the GGUF file", path);
        return -1;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);

    int rc = -1;
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        err_set(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
    } else {
        rc = write_body(fp, w, &header, alignment, path, err, errlen);
        if (fclose(fp) != 0 && rc == 0) {
            err_set(err, errlen, "%s: cannot write: %s", tmp, strerror(errno));
            rc = -1;
        }
        if (rc == 0 && rename(tmp, path) != 0) {
            err_set(err, errlen, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
            rc = -1;
        }
        if (rc != 0) remove(tmp);
    }
    free(tmp);
    free(header.data);
    return rc;
}
