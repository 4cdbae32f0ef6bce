/*
 * gguf.h - read-only view of a GGUF file (v2 and v3).
 *
 * The file is mmap'ed once; every key, string, array and tensor below points
 * into that mapping, nothing is copied. gguf_open() validates the whole header
 * (every count, string length, array length, tensor shape, type and data range)
 * against the file size before returning, so callers can trust every pointer
 * and size they get back. Strings in the file are not NUL-terminated: they are
 * handed out as (ptr, len) pairs.
 */
#ifndef PRBOT_GGUF_H
#define PRBOT_GGUF_H

#include <stddef.h>
#include <stdint.h>

/* Metadata value types, numbered as in the file format. */
typedef enum {
    GGUF_VALUE_UINT8 = 0,
    GGUF_VALUE_INT8 = 1,
    GGUF_VALUE_UINT16 = 2,
    GGUF_VALUE_INT16 = 3,
    GGUF_VALUE_UINT32 = 4,
    GGUF_VALUE_INT32 = 5,
    GGUF_VALUE_FLOAT32 = 6,
    GGUF_VALUE_BOOL = 7,
    GGUF_VALUE_STRING = 8,
    GGUF_VALUE_ARRAY = 9,
    GGUF_VALUE_UINT64 = 10,
    GGUF_VALUE_INT64 = 11,
    GGUF_VALUE_FLOAT64 = 12,
    GGUF_VALUE_TYPE_COUNT
} gguf_value_type;

typedef struct {
    const char *ptr; /* points into the mapping; NOT NUL-terminated */
    uint64_t len;
} gguf_str;

typedef struct {
    gguf_str key;
    gguf_value_type type;       /* value type; for arrays GGUF_VALUE_ARRAY */
    gguf_value_type array_type; /* element type when type == ARRAY */
    uint64_t array_len;         /* element count when type == ARRAY */
    const uint8_t *data;        /* scalar value, or first array element (for a STRING value: its
                                   u64 length prefix; use gguf_get_str) */
    const gguf_str *strings;    /* string arrays only: array_len entries, prebuilt at open */
} gguf_kv;

#define GGUF_MAX_DIMS 4

typedef struct {
    gguf_str name;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the contiguous (row) dimension; unused dims are 1 */
    uint32_t type;             /* a quant_type (engine/quant.h) */
    uint64_t offset;           /* relative to the start of the data section */
    const void *data;          /* points into the mapping */
    size_t nbytes;
} gguf_tensor;

typedef struct gguf_file {
    const char *path;
    int fd;
    const uint8_t *map;
    size_t size;
    uint32_t version;
    uint64_t n_kv;
    gguf_kv *kv;
    uint64_t n_tensors;
    gguf_tensor *tensors;
    uint64_t alignment;
    uint64_t data_offset;
} gguf_file;

/* Opens and validates `path`. On failure returns -1, *out is NULL and `err`
 * holds one line such as "model.gguf: tensor blk.3.ffn_up.weight extends past
 * end of file". */
int gguf_open(gguf_file **out, const char *path, char *err, size_t errlen);
void gguf_close(gguf_file *f);

const gguf_kv *gguf_kv_find(const gguf_file *f, const char *key);
const gguf_tensor *gguf_tensor_find(const gguf_file *f, const char *name);

/* Typed getters. Each returns 0 on success, -1 when the key is missing or has
 * a type that cannot represent the request (any integer type converts to an
 * integer if it fits; float32/float64 convert to float). */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out);
int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out);
int gguf_get_f32(const gguf_file *f, const char *key, float *out);
int gguf_get_bool(const gguf_file *f, const char *key, int *out);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);

/* Array element access (no bounds beyond array_len; caller checks i). */
float gguf_array_f32(const gguf_kv *kv, uint64_t i); /* FLOAT32 arrays */
int64_t gguf_array_int(const gguf_kv *kv, uint64_t i); /* any integer array */

/* Compares a gguf_str with a C string. */
int gguf_str_eq(gguf_str s, const char *c);
/* A string from the file as printable ASCII for an error message (other
 * bytes, line breaks among them, become '?'; long ones are shortened). */
const char *gguf_str_printable(char *dst, size_t cap, gguf_str s);

#endif
