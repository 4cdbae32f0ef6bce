/*
 * gguf_writer.h - a small GGUF v3 (or v2) writer for tests and benchmarks.
 *
 * Collect metadata and tensors, then write them in one go:
 *
 *     gguf_writer *w = gguf_writer_new();
 *     gguf_writer_add_str(w, "general.architecture", "llama");
 *     gguf_writer_add_tensor(w, "token_embd.weight", QT_Q4_0, 2, ne, data,
 *                            gguf_tensor_nbytes(QT_Q4_0, 2, ne));
 *     if (gguf_writer_write(w, "model.gguf", err, sizeof err)) ...;
 *     gguf_writer_free(w);
 *
 * Keys and values are copied when added; tensor data is NOT copied: the
 * pointer must stay valid until gguf_writer_write() returns, or give a fill
 * callback instead so that a huge tensor is produced piece by piece while it
 * is written. The writer writes exactly what it is told (it does not validate
 * shapes, types or values), which is what tests need to craft corrupt files;
 * the reader (gguf.c) does the validation. Tensor data is aligned to
 * `general.alignment` when that key was added as a valid uint32, else to 32.
 */
#ifndef PRBOT_GGUF_WRITER_H
#define PRBOT_GGUF_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

typedef struct gguf_writer gguf_writer;

/* Produces bytes [offset, offset + len) of a tensor's data into buf. The
 * writer asks in order, in chunks of a few MB; when the tensor's row size is
 * known, offset and len are whole rows. Returns 0, or -1 to abort the write. */
typedef int (*gguf_fill_fn)(void *user, void *buf, uint64_t offset, size_t len);

gguf_writer *gguf_writer_new(void); /* NULL when out of memory */
void gguf_writer_free(gguf_writer *w);

/* Header version to write (default 3; 2 has the same layout). */
void gguf_writer_set_version(gguf_writer *w, uint32_t version);

/* Metadata. Each returns 0, or -1 when out of memory (gguf_writer_write then
 * fails too, so callers may check only at the end). */
int gguf_writer_add_u8(gguf_writer *w, const char *key, uint8_t v);
int gguf_writer_add_i8(gguf_writer *w, const char *key, int8_t v);
int gguf_writer_add_u16(gguf_writer *w, const char *key, uint16_t v);
int gguf_writer_add_i16(gguf_writer *w, const char *key, int16_t v);
int gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_writer_add_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_add_i64(gguf_writer *w, const char *key, int64_t v);
int gguf_writer_add_f32(gguf_writer *w, const char *key, float v);
int gguf_writer_add_f64(gguf_writer *w, const char *key, double v);
int gguf_writer_add_bool(gguf_writer *w, const char *key, int v);
int gguf_writer_add_str(gguf_writer *w, const char *key, const char *s);
int gguf_writer_add_str_n(gguf_writer *w, const char *key, const char *s, size_t len);
int gguf_writer_add_str_array(gguf_writer *w, const char *key, const char *const *s, size_t n);
int gguf_writer_add_f32_array(gguf_writer *w, const char *key, const float *v, size_t n);
int gguf_writer_add_i32_array(gguf_writer *w, const char *key, const int32_t *v, size_t n);
/* Any array: `elems` holds the n elements already encoded as in the file
 * (little-endian scalars; u64 length + bytes for strings; u32 type + u64
 * count + elements for nested arrays). */
int gguf_writer_add_array(gguf_writer *w, const char *key, uint32_t elem_type, uint64_t n, const void *elems,
                          size_t elems_len);
/* Escape hatch for tests: writes the key, then `type` as given (even an
 * invalid one), then `len` raw value bytes. */
int gguf_writer_add_raw(gguf_writer *w, const char *key, uint32_t type, const void *value, size_t len);

/* Tensors. `ne` has n_dims entries (up to 4 are stored; more are written as
 * given, for tests). `nbytes` is the size of the data; gguf_tensor_nbytes()
 * computes the right one for a valid shape. */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne,
                           const void *data, size_t nbytes);
int gguf_writer_add_tensor_fill(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                const int64_t *ne, size_t nbytes, gguf_fill_fn fill, void *user);

/* Bytes of a tensor of this type and shape; 0 when the type is unsupported,
 * the shape invalid, or the size would overflow. */
size_t gguf_tensor_nbytes(uint32_t type, uint32_t n_dims, const int64_t *ne);

/* Writes everything to `path` atomically (to path.tmp, then rename). Returns 0,
 * or -1 with one line in err. The writer can be written again afterwards. */
int gguf_writer_write(gguf_writer *w, const char *path, char *err, size_t errlen);

#endif
