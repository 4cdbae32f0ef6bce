/*
 * gguf.c - open, validate and query a GGUF file (v2 and v3, little-endian).
 *
 * Layout of the file (all integers little-endian):
 *   "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x      { string key | u32 value_type | value }
 *   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 type | u64 offset }
 *   padding up to `general.alignment` (default 32), then the tensor data.
 * A string is u64 length + bytes (no NUL); an array is u32 element type +
 * u64 count + elements (which may themselves be strings or arrays).
 *
 * The file is mmap'ed read-only and parsed in one pass by a bounds-checked
 * cursor: every read first checks that the bytes exist, every count is
 * compared with the bytes left before anything is allocated for it, and every
 * size product uses overflow-checked arithmetic. Only after the whole header
 * checks out does gguf_open() hand back pointers into the mapping, so the
 * loader above can trust every size it sees. Errors are one line starting
 * with the path, naming the key or tensor at fault.
 *
 * Keys and tensor names go into two small open-addressing hash tables (built
 * at open, also used to reject duplicates), so lookups are O(1). Tensors
 * whose data overlaps are refused (check_overlaps says why), so the tensors'
 * bytes never add up to more than the file.
 */
#include "gguf.h"
#include "strhash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quant.h"

#define GGUF_MAGIC "GGUF"
#define GGUF_HEADER_BYTES 24       /* magic, version, n_tensors, n_kv */
#define GGUF_MIN_KV_BYTES 13       /* empty key (8) + type (4) + one-byte value */
#define GGUF_MIN_TENSOR_BYTES 24   /* empty name (8) + n_dims (4) + type (4) + offset (8) */
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_ARRAY_NESTING 16  /* arrays of arrays deeper than this are rejected */
#define GGUF_PRINT_NAME_MAX 80     /* longest key/tensor name quoted in an error */

/* The public struct plus what only this file needs. */
typedef struct {
    gguf_file pub;
    char *path_copy;
    size_t *kv_slots; /* hash slots holding index + 1; 0 = empty */
    size_t kv_mask;
    size_t *tensor_slots;
    size_t tensor_mask;
} gguf_file_impl;

/* Bounds-checked cursor over the mapping, plus what error messages need. */
typedef struct {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    const char *path;
    char *err;
    size_t errlen;
    char where[160]; /* "metadata key 3 (general.name)", for truncation errors */
} reader;

/* ---- errors ---------------------------------------------------------------- */

/* Writes "path: message" to err, forced onto one line. Always returns -1. */
static int fail(reader *r, const char *fmt, ...)
{
    if (!r->err || r->errlen == 0) return -1;
    int n = snprintf(r->err, r->errlen, "%s: ", r->path);
    if (n >= 0 && (size_t)n < r->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    for (char *p = r->err; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return -1;
}

/* Copies a file-provided name into dst as printable ASCII, shortened if long. */
static void printable_name(char *dst, size_t cap, const char *s, uint64_t len)
{
    if (!cap) return;
    size_t n = 0;
    for (uint64_t i = 0; i < len && n + 4 < cap; i++) {
        if (i == GGUF_PRINT_NAME_MAX) {
            memcpy(dst + n, "...", 3);
            n += 3;
            break;
        }
        unsigned char c = (unsigned char)s[i];
        dst[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[n] = 0;
}

static const char *const ggml_type_names[] = {
    [0] = "F32",      [1] = "F16",      [2] = "Q4_0",     [3] = "Q4_1",    [6] = "Q5_0",
    [7] = "Q5_1",     [8] = "Q8_0",     [9] = "Q8_1",     [10] = "Q2_K",   [11] = "Q3_K",
    [12] = "Q4_K",    [13] = "Q5_K",    [14] = "Q6_K",    [15] = "Q8_K",   [16] = "IQ2_XXS",
    [17] = "IQ2_XS",  [18] = "IQ3_XXS", [19] = "IQ1_S",   [20] = "IQ4_NL", [21] = "IQ3_S",
    [22] = "IQ2_S",   [23] = "IQ4_XS",  [24] = "I8",      [25] = "I16",    [26] = "I32",
    [27] = "I64",     [28] = "F64",     [29] = "IQ1_M",   [30] = "BF16",   [34] = "TQ1_0",
    [35] = "TQ2_0",   [39] = "MXFP4",
};

/* Name of a GGML type id for messages, or NULL when the id means nothing. */
static const char *ggml_type_name(uint32_t type)
{
    if (type >= sizeof ggml_type_names / sizeof ggml_type_names[0]) return NULL;
    return ggml_type_names[type];
}

static const char *value_type_name(uint32_t t)
{
    static const char *const names[GGUF_VALUE_TYPE_COUNT] = {
        "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
        "bool", "string", "array", "uint64", "int64", "float64",
    };
    return t < GGUF_VALUE_TYPE_COUNT ? names[t] : "unknown";
}

/* ---- primitive reads --------------------------------------------------------- */

static uint64_t remaining(const reader *r) { return r->size - r->pos; }

static int need(reader *r, uint64_t n)
{
    if (remaining(r) < n) return fail(r, "truncated in %s", r->where);
    return 0;
}

static uint32_t load_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t load_u64(const uint8_t *p) { return load_u32(p) | (uint64_t)load_u32(p + 4) << 32; }

static int read_u32(reader *r, uint32_t *out)
{
    if (need(r, 4)) return -1;
    *out = load_u32(r->base + r->pos);
    r->pos += 4;
    return 0;
}

static int read_u64(reader *r, uint64_t *out)
{
    if (need(r, 8)) return -1;
    *out = load_u64(r->base + r->pos);
    r->pos += 8;
    return 0;
}

static int read_str(reader *r, gguf_str *out)
{
    uint64_t len;
    if (read_u64(r, &len) || need(r, len)) return -1;
    out->ptr = (const char *)r->base + r->pos;
    out->len = len;
    r->pos += len;
    return 0;
}

/* Bytes of a fixed-size value type; 0 for string, array and unknown types. */
static size_t fixed_value_size(uint32_t type)
{
    switch (type) {
    case GGUF_VALUE_UINT8: case GGUF_VALUE_INT8: case GGUF_VALUE_BOOL: return 1;
    case GGUF_VALUE_UINT16: case GGUF_VALUE_INT16: return 2;
    case GGUF_VALUE_UINT32: case GGUF_VALUE_INT32: case GGUF_VALUE_FLOAT32: return 4;
    case GGUF_VALUE_UINT64: case GGUF_VALUE_INT64: case GGUF_VALUE_FLOAT64: return 8;
    default: return 0;
    }
}

/* ---- metadata ---------------------------------------------------------------- */

/* Checks an array body (element type and count already read) and moves past
 * it. Strings are collected into *strings when that is non-NULL. */
static int skip_array_body(reader *r, uint32_t elem_type, uint64_t count, gguf_str **strings, int depth);

/* Reads an array header (element type, count) and skips its body. */
static int skip_nested_array(reader *r, int depth)
{
    uint32_t elem_type;
    uint64_t count;
    if (depth > GGUF_MAX_ARRAY_NESTING)
        return fail(r, "%s: arrays nested deeper than %d levels", r->where, GGUF_MAX_ARRAY_NESTING);
    if (read_u32(r, &elem_type) || read_u64(r, &count)) return -1;
    return skip_array_body(r, elem_type, count, NULL, depth);
}

static int skip_array_body(reader *r, uint32_t elem_type, uint64_t count, gguf_str **strings, int depth)
{
    if (elem_type >= GGUF_VALUE_TYPE_COUNT)
        return fail(r, "%s: unknown array element type %u", r->where, elem_type);
    size_t elem = fixed_value_size(elem_type);
    if (elem) {
        if (count > remaining(r) / elem) return fail(r, "truncated in %s: an array of %llu elements does not fit", r->where, (unsigned long long)count);
        r->pos += count * elem;
        return 0;
    }
    uint64_t min_elem = elem_type == GGUF_VALUE_STRING ? 8 : 12;
    if (count > remaining(r) / min_elem)
        return fail(r, "truncated in %s: an array of %llu elements does not fit", r->where, (unsigned long long)count);
    if (elem_type == GGUF_VALUE_STRING) {
        gguf_str *list = NULL;
        if (strings) {
            list = malloc((size_t)(count ? count : 1) * sizeof *list);
            if (!list) return fail(r, "%s: out of memory for %llu strings", r->where, (unsigned long long)count);
        }
        for (uint64_t i = 0; i < count; i++) {
            gguf_str s;
            if (read_str(r, &s)) {
                free(list);
                return -1;
            }
            if (list) list[i] = s;
        }
        if (strings) *strings = list;
        return 0;
    }
    for (uint64_t i = 0; i < count; i++)
        if (skip_nested_array(r, depth + 1)) return -1;
    return 0;
}

/* Parses key `index` into kv. */
static int parse_kv(reader *r, uint64_t index, gguf_kv *kv)
{
    char name[GGUF_PRINT_NAME_MAX + 8];
    uint32_t type;

    snprintf(r->where, sizeof r->where, "metadata key %llu", (unsigned long long)index);
    if (read_str(r, &kv->key)) return -1;
    printable_name(name, sizeof name, kv->key.ptr, kv->key.len);
    snprintf(r->where, sizeof r->where, "metadata key %llu (%s)", (unsigned long long)index, name);

    if (read_u32(r, &type)) return -1;
    if (type >= GGUF_VALUE_TYPE_COUNT) return fail(r, "%s: unknown value type %u", r->where, type);
    kv->type = (gguf_value_type)type;

    if (type == GGUF_VALUE_STRING) {
        gguf_str s;
        kv->data = r->base + r->pos; /* the u64 length prefix; use gguf_get_str */
        return read_str(r, &s);
    }
    if (type != GGUF_VALUE_ARRAY) {
        size_t n = fixed_value_size(type);
        if (need(r, n)) return -1;
        kv->data = r->base + r->pos;
        r->pos += n;
        return 0;
    }
    uint32_t elem_type;
    uint64_t count;
    if (read_u32(r, &elem_type) || read_u64(r, &count)) return -1;
    kv->array_type = (gguf_value_type)elem_type;
    kv->array_len = count;
    kv->data = r->base + r->pos;
    gguf_str *strings = NULL;
    if (skip_array_body(r, elem_type, count, &strings, 1)) return -1;
    kv->strings = strings;
    return 0;
}

/* ---- hash tables --------------------------------------------------------------- */

static int str_same(gguf_str a, const char *b, uint64_t blen)
{
    return a.len == blen && memcmp(a.ptr, b, blen) == 0;
}

/* Allocates a table with at least 2*n slots (a power of two). The hash is
 * keyed (strhash.h): the names come from the file, and with a fixed hash a
 * file could put them all in one cluster of slots, making the table cost
 * O(n^2) probes to fill. */
static size_t *slots_new(uint64_t n, size_t *mask)
{
    size_t cap = 8;
    while (cap < 2 * n) cap *= 2;
    *mask = cap - 1;
    return calloc(cap, sizeof(size_t));
}

/* Sets `result` to the slot of `key` in a table over entries[].field: the slot
 * holding it, or the empty slot where it would go (linear probing). */
#define SLOT_FIND(slots, mask, entries, field, key, keylen, result)                                           \
    do {                                                                                                       \
        size_t i_ = (size_t)strhash((key), (size_t)(keylen)) & (mask);                                         \
        while ((slots)[i_] && !str_same((entries)[(slots)[i_] - 1].field, (key), (keylen))) i_ = (i_ + 1) & (mask); \
        (result) = i_;                                                                                         \
    } while (0)

static int index_keys(reader *r, gguf_file_impl *g)
{
    gguf_file *f = &g->pub;
    g->kv_slots = slots_new(f->n_kv, &g->kv_mask);
    if (!g->kv_slots) return fail(r, "out of memory");
    for (uint64_t i = 0; i < f->n_kv; i++) {
        size_t slot;
        SLOT_FIND(g->kv_slots, g->kv_mask, f->kv, key, f->kv[i].key.ptr, f->kv[i].key.len, slot);
        if (g->kv_slots[slot]) {
            char name[GGUF_PRINT_NAME_MAX + 8];
            printable_name(name, sizeof name, f->kv[i].key.ptr, f->kv[i].key.len);
            return fail(r, "duplicate metadata key %s", name);
        }
        g->kv_slots[slot] = (size_t)i + 1;
    }
    return 0;
}

static int index_tensors(reader *r, gguf_file_impl *g)
{
    gguf_file *f = &g->pub;
    g->tensor_slots = slots_new(f->n_tensors, &g->tensor_mask);
    if (!g->tensor_slots) return fail(r, "out of memory");
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        size_t slot;
        SLOT_FIND(g->tensor_slots, g->tensor_mask, f->tensors, name, f->tensors[i].name.ptr, f->tensors[i].name.len, slot);
        if (g->tensor_slots[slot]) {
            char name[GGUF_PRINT_NAME_MAX + 8];
            printable_name(name, sizeof name, f->tensors[i].name.ptr, f->tensors[i].name.len);
            return fail(r, "duplicate tensor name %s", name);
        }
        g->tensor_slots[slot] = (size_t)i + 1;
    }
    return 0;
}

/* ---- header, alignment, tensors ---------------------------------------------- */

static int parse_header(reader *r, gguf_file *f)
{
    uint32_t version;
    snprintf(r->where, sizeof r->where, "header");
    if (r->size < 4 || memcmp(r->base, GGUF_MAGIC, 4) != 0) return fail(r, "not a GGUF file (bad magic)");
    r->pos = 4;
    if (read_u32(r, &version)) return -1;
    if (version == 1)
        return fail(r, "GGUF version 1 is not supported (only versions 2 and 3); convert the model again with a current llama.cpp");
    if (version != 2 && version != 3) {
        uint32_t swapped = __builtin_bswap32(version);
        if (swapped == 2 || swapped == 3) return fail(r, "big-endian GGUF file; only little-endian files are supported");
        return fail(r, "unsupported GGUF version %u (only versions 2 and 3 are supported)", version);
    }
    f->version = version;
    if (read_u64(r, &f->n_tensors) || read_u64(r, &f->n_kv)) return -1;

    /* Every entry takes some bytes: reject counts the file cannot hold before allocating. */
    uint64_t left = remaining(r);
    if (f->n_kv > left / GGUF_MIN_KV_BYTES)
        return fail(r, "truncated or corrupt: header claims %llu metadata keys, more than a %llu-byte file can hold",
                    (unsigned long long)f->n_kv, (unsigned long long)r->size);
    left -= f->n_kv * GGUF_MIN_KV_BYTES;
    if (f->n_tensors > left / GGUF_MIN_TENSOR_BYTES)
        return fail(r, "truncated or corrupt: header claims %llu tensors, more than a %llu-byte file can hold",
                    (unsigned long long)f->n_tensors, (unsigned long long)r->size);
    return 0;
}

/* Decodes an integer scalar of any width; *is_signed tells which of s/u holds it. */
static int scalar_int(gguf_value_type type, const uint8_t *p, int64_t *s, uint64_t *u, int *is_signed)
{
    switch (type) {
    case GGUF_VALUE_UINT8: *u = p[0]; *is_signed = 0; return 0;
    case GGUF_VALUE_INT8: *s = (int8_t)p[0]; *is_signed = 1; return 0;
    case GGUF_VALUE_UINT16: *u = (uint16_t)(p[0] | p[1] << 8); *is_signed = 0; return 0;
    case GGUF_VALUE_INT16: *s = (int16_t)(uint16_t)(p[0] | p[1] << 8); *is_signed = 1; return 0;
    case GGUF_VALUE_UINT32: *u = load_u32(p); *is_signed = 0; return 0;
    case GGUF_VALUE_INT32: *s = (int32_t)load_u32(p); *is_signed = 1; return 0;
    case GGUF_VALUE_UINT64: *u = load_u64(p); *is_signed = 0; return 0;
    case GGUF_VALUE_INT64: *s = (int64_t)load_u64(p); *is_signed = 1; return 0;
    default: return -1;
    }
}

static int read_alignment(reader *r, gguf_file *f)
{
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *kv = gguf_kv_find(f, "general.alignment");
    if (!kv) return 0;
    uint32_t a;
    if (gguf_get_u32(f, "general.alignment", &a) != 0) {
        if (kv->type == GGUF_VALUE_ARRAY || kv->type == GGUF_VALUE_STRING || kv->type == GGUF_VALUE_BOOL ||
            kv->type == GGUF_VALUE_FLOAT32 || kv->type == GGUF_VALUE_FLOAT64)
            return fail(r, "general.alignment has type %s, expected uint32", value_type_name(kv->type));
        return fail(r, "general.alignment is out of range");
    }
    if (a == 0 || (a & (a - 1)) != 0) return fail(r, "general.alignment must be a nonzero power of two (got %u)", a);
    f->alignment = a;
    return 0;
}

/* Reads tensor info `index`: name, shape and type, checked for sanity. */
static int parse_tensor_info(reader *r, uint64_t index, gguf_tensor *t)
{
    char name[GGUF_PRINT_NAME_MAX + 8];
    snprintf(r->where, sizeof r->where, "tensor info %llu", (unsigned long long)index);
    if (read_str(r, &t->name)) return -1;
    printable_name(name, sizeof name, t->name.ptr, t->name.len);
    snprintf(r->where, sizeof r->where, "tensor info %llu (%s)", (unsigned long long)index, name);

    if (read_u32(r, &t->n_dims)) return -1;
    if (t->n_dims > GGUF_MAX_DIMS)
        return fail(r, "tensor %s has %u dimensions (at most %d are supported)", name, t->n_dims, GGUF_MAX_DIMS);
    int64_t n_elements = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        uint64_t ne = 1;
        if ((uint32_t)d < t->n_dims && read_u64(r, &ne)) return -1;
        if (ne == 0) return fail(r, "tensor %s has dimension %d of size 0", name, d);
        if (ne > (uint64_t)INT64_MAX) return fail(r, "tensor %s has dimension %d of absurd size %llu", name, d, (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
        if (__builtin_mul_overflow(n_elements, t->ne[d], &n_elements))
            return fail(r, "tensor %s has an element count that overflows 64 bits", name);
    }
    if (read_u32(r, &t->type) || read_u64(r, &t->offset)) return -1;

    const quant_traits *q = quant_traits_of(t->type);
    if (!q) {
        const char *tn = ggml_type_name(t->type);
        if (tn) return fail(r, "tensor %s has type %s (id %u), which is not supported", name, tn, t->type);
        return fail(r, "tensor %s has unknown type id %u", name, t->type);
    }
    if (q->block_size <= 0 || t->ne[0] % q->block_size != 0)
        return fail(r, "tensor %s: row length %lld is not a multiple of the %s block size %d", name,
                    (long long)t->ne[0], q->name, q->block_size);
    return 0;
}

/* Once the data section start is known: size, alignment and bounds of tensor i. */
static int place_tensor(reader *r, gguf_file *f, gguf_tensor *t)
{
    char name[GGUF_PRINT_NAME_MAX + 8];
    printable_name(name, sizeof name, t->name.ptr, t->name.len);
    const quant_traits *q = quant_traits_of(t->type);
    uint64_t row_bytes, nbytes;
    if (__builtin_mul_overflow((uint64_t)(t->ne[0] / q->block_size), (uint64_t)q->type_size, &row_bytes) ||
        __builtin_mul_overflow(row_bytes, (uint64_t)t->ne[1], &nbytes) ||
        __builtin_mul_overflow(nbytes, (uint64_t)t->ne[2], &nbytes) ||
        __builtin_mul_overflow(nbytes, (uint64_t)t->ne[3], &nbytes) || nbytes > SIZE_MAX)
        return fail(r, "tensor %s is too large (its size overflows)", name);
    if (t->offset % f->alignment != 0)
        return fail(r, "tensor %s: data offset %llu is not a multiple of the alignment %llu", name,
                    (unsigned long long)t->offset, (unsigned long long)f->alignment);
    if (f->data_offset > r->size || t->offset > r->size - f->data_offset ||
        nbytes > r->size - f->data_offset - t->offset)
        return fail(r, "tensor %s extends past end of file", name);
    t->nbytes = (size_t)nbytes;
    t->data = r->base + f->data_offset + t->offset;
    return 0;
}

typedef struct {
    uint64_t begin, end;
    size_t index;
} tensor_span;

static int by_begin(const void *a, const void *b)
{
    uint64_t x = ((const tensor_span *)a)->begin, y = ((const tensor_span *)b)->begin;
    return x < y ? -1 : x > y;
}

/* No two tensors may share bytes. The reference implementation requires the
 * data to be laid out one tensor after the other, and a loader that repacks
 * weights makes a copy per tensor: tensors aliasing one range would make
 * memory grow with the tensor count instead of the file. Sharing only the
 * identical ranges would not bound it (each tensor can start one block
 * further), so overlap of any kind is refused. O(n log n). */
static int check_overlaps(reader *r, gguf_file *f)
{
    if (f->n_tensors < 2) return 0;
    tensor_span *spans = malloc((size_t)f->n_tensors * sizeof *spans);
    if (!spans) return fail(r, "out of memory for %llu tensors", (unsigned long long)f->n_tensors);
    for (size_t i = 0; i < f->n_tensors; i++)
        spans[i] = (tensor_span){f->tensors[i].offset, f->tensors[i].offset + f->tensors[i].nbytes, i};
    qsort(spans, (size_t)f->n_tensors, sizeof *spans, by_begin);
    int rc = 0;
    for (size_t i = 1; i < f->n_tensors && rc == 0; i++) {
        if (spans[i].begin >= spans[i - 1].end) continue;
        const gguf_tensor *a = &f->tensors[spans[i - 1].index], *b = &f->tensors[spans[i].index];
        char na[GGUF_PRINT_NAME_MAX + 8], nb[GGUF_PRINT_NAME_MAX + 8];
        printable_name(na, sizeof na, a->name.ptr, a->name.len);
        printable_name(nb, sizeof nb, b->name.ptr, b->name.len);
        rc = fail(r, "tensors %s and %s overlap in the file", na, nb);
    }
    free(spans);
    return rc;
}

static int parse_all(reader *r, gguf_file_impl *g)
{
    gguf_file *f = &g->pub;
    if (parse_header(r, f)) return -1;

    f->kv = calloc((size_t)(f->n_kv ? f->n_kv : 1), sizeof *f->kv);
    if (!f->kv) return fail(r, "out of memory for %llu metadata keys", (unsigned long long)f->n_kv);
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (parse_kv(r, i, &f->kv[i])) return -1;
    if (index_keys(r, g) || read_alignment(r, f)) return -1;

    f->tensors = calloc((size_t)(f->n_tensors ? f->n_tensors : 1), sizeof *f->tensors);
    if (!f->tensors) return fail(r, "out of memory for %llu tensors", (unsigned long long)f->n_tensors);
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (parse_tensor_info(r, i, &f->tensors[i])) return -1;
    if (index_tensors(r, g)) return -1;

    /* pos <= size < 2^63 and alignment <= 2^31, so this cannot overflow. A
     * file without tensors may stop before the padding (vocab-only files do). */
    f->data_offset = (r->pos + f->alignment - 1) / f->alignment * f->alignment;
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (place_tensor(r, f, &f->tensors[i])) return -1;
    return check_overlaps(r, f);
}

/* ---- open / close ------------------------------------------------------------- */

static int open_mapping(gguf_file_impl *g, reader *r)
{
    gguf_file *f = &g->pub;
    struct stat st;
    f->fd = open(r->path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) return fail(r, "%s", strerror(errno));
    if (fstat(f->fd, &st) != 0) return fail(r, "%s", strerror(errno));
    if (S_ISDIR(st.st_mode)) return fail(r, "%s", strerror(EISDIR));
    if (!S_ISREG(st.st_mode)) return fail(r, "not a regular file");
    if (st.st_size == 0) return fail(r, "file is empty, not a GGUF model");
    f->size = (size_t)st.st_size;
    void *map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, f->fd, 0);
    if (map == MAP_FAILED) return fail(r, "cannot map the file: %s", strerror(errno));
    f->map = map;
    r->base = f->map;
    r->size = f->size;
    return 0;
}

int gguf_open(gguf_file **out, const char *path, char *err, size_t errlen)
{
    reader r = {.path = path ? path : "(null)", .err = err, .errlen = errlen};
    *out = NULL;
    if (err && errlen) err[0] = 0;
    if (!path) return fail(&r, "no path given");

    gguf_file_impl *g = calloc(1, sizeof *g);
    if (!g) return fail(&r, "out of memory");
    g->pub.fd = -1;
    g->path_copy = strdup(path);
    g->pub.path = g->path_copy;
    if (!g->path_copy) {
        free(g);
        return fail(&r, "out of memory");
    }
    if (open_mapping(g, &r) || parse_all(&r, g)) {
        gguf_close(&g->pub);
        return -1;
    }
    *out = &g->pub;
    return 0;
}

void gguf_close(gguf_file *f)
{
    if (!f) return;
    gguf_file_impl *g = (gguf_file_impl *)f;
    if (f->kv)
        for (uint64_t i = 0; i < f->n_kv; i++) free((void *)f->kv[i].strings);
    free(f->kv);
    free(f->tensors);
    free(g->kv_slots);
    free(g->tensor_slots);
    if (f->map) munmap((void *)f->map, f->size);
    if (f->fd >= 0) close(f->fd);
    free(g->path_copy);
    free(g);
}

/* ---- lookups and getters --------------------------------------------------------- */

const gguf_kv *gguf_kv_find(const gguf_file *f, const char *key)
{
    const gguf_file_impl *g = (const gguf_file_impl *)f;
    if (!f || !key || !g->kv_slots) return NULL;
    size_t slot;
    SLOT_FIND(g->kv_slots, g->kv_mask, f->kv, key, key, strlen(key), slot);
    return g->kv_slots[slot] ? &f->kv[g->kv_slots[slot] - 1] : NULL;
}

const gguf_tensor *gguf_tensor_find(const gguf_file *f, const char *name)
{
    const gguf_file_impl *g = (const gguf_file_impl *)f;
    if (!f || !name || !g->tensor_slots) return NULL;
    size_t slot;
    SLOT_FIND(g->tensor_slots, g->tensor_mask, f->tensors, name, name, strlen(name), slot);
    return g->tensor_slots[slot] ? &f->tensors[g->tensor_slots[slot] - 1] : NULL;
}

/* A scalar (non-array) key, or NULL. */
static const gguf_kv *scalar_kv(const gguf_file *f, const char *key)
{
    const gguf_kv *kv = gguf_kv_find(f, key);
    return kv && kv->type != GGUF_VALUE_ARRAY ? kv : NULL;
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out)
{
    const gguf_kv *kv = scalar_kv(f, key);
    int64_t s;
    uint64_t u;
    int is_signed;
    if (!kv || scalar_int(kv->type, kv->data, &s, &u, &is_signed)) return -1;
    if (is_signed) {
        if (s < 0 || s > (int64_t)UINT32_MAX) return -1;
        *out = (uint32_t)s;
    } else {
        if (u > UINT32_MAX) return -1;
        *out = (uint32_t)u;
    }
    return 0;
}

int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out)
{
    const gguf_kv *kv = scalar_kv(f, key);
    int64_t s;
    uint64_t u;
    int is_signed;
    if (!kv || scalar_int(kv->type, kv->data, &s, &u, &is_signed)) return -1;
    if (!is_signed) {
        if (u > (uint64_t)INT64_MAX) return -1;
        s = (int64_t)u;
    }
    *out = s;
    return 0;
}

/* Floats convert directly; integers are accepted too (a float can hold them). */
int gguf_get_f32(const gguf_file *f, const char *key, float *out)
{
    const gguf_kv *kv = scalar_kv(f, key);
    if (!kv) return -1;
    if (kv->type == GGUF_VALUE_FLOAT32) {
        memcpy(out, kv->data, 4);
        return 0;
    }
    if (kv->type == GGUF_VALUE_FLOAT64) {
        double d;
        memcpy(&d, kv->data, 8);
        *out = (float)d;
        return 0;
    }
    int64_t s;
    uint64_t u;
    int is_signed;
    if (scalar_int(kv->type, kv->data, &s, &u, &is_signed)) return -1;
    *out = is_signed ? (float)s : (float)u;
    return 0;
}

int gguf_get_bool(const gguf_file *f, const char *key, int *out)
{
    const gguf_kv *kv = scalar_kv(f, key);
    if (!kv || kv->type != GGUF_VALUE_BOOL) return -1;
    *out = kv->data[0] != 0;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out)
{
    const gguf_kv *kv = scalar_kv(f, key);
    if (!kv || kv->type != GGUF_VALUE_STRING) return -1;
    out->len = load_u64(kv->data);
    out->ptr = (const char *)kv->data + 8;
    return 0;
}

float gguf_array_f32(const gguf_kv *kv, uint64_t i)
{
    if (kv->array_type == GGUF_VALUE_FLOAT32) {
        float v;
        memcpy(&v, kv->data + i * 4, 4);
        return v;
    }
    if (kv->array_type == GGUF_VALUE_FLOAT64) {
        double d;
        memcpy(&d, kv->data + i * 8, 8);
        return (float)d;
    }
    return (float)gguf_array_int(kv, i);
}

int64_t gguf_array_int(const gguf_kv *kv, uint64_t i)
{
    size_t elem = fixed_value_size(kv->array_type);
    int64_t s;
    uint64_t u;
    int is_signed;
    if (kv->array_type == GGUF_VALUE_BOOL) return kv->data[i] != 0;
    if (!elem || scalar_int(kv->array_type, kv->data + i * elem, &s, &u, &is_signed)) return 0;
    return is_signed ? s : (int64_t)u;
}

const char *gguf_str_printable(char *dst, size_t cap, gguf_str s)
{
    printable_name(dst, cap, s.ptr, s.len);
    return dst;
}

int gguf_str_eq(gguf_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}
