/*
 * quant_dump - exposes engine/quant.c to the Python oracle test.
 *
 *   quant_dump dequant IN OUT          IN: uint32 type id (little-endian) then
 *                                      whole blocks; OUT: the f32 values
 *   quant_dump quantize TYPE IN OUT    IN: f32 values (a multiple of the block
 *                                      size); OUT: blocks from quantize_row_ref
 *
 * tests/test_quant_oracle.py feeds it random blocks and compares the output
 * with the `gguf` Python package, an implementation independent of ours.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../engine/quant.h"

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        unsigned char *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    fclose(f);
    *len = n;
    return buf;
}

static int write_all(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t put = fwrite(data, 1, len, f);
    int rc = fclose(f);
    return put == len && rc == 0 ? 0 : -1;
}

static int run_dequant(const char *in, const char *out)
{
    size_t len;
    unsigned char *buf = read_all(in, &len);
    if (!buf || len < 4) {
        fprintf(stderr, "quant_dump: cannot read %s\n", in);
        free(buf);
        return 1;
    }
    uint32_t type = (uint32_t)buf[0] | (uint32_t)buf[1] << 8 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 24;
    const quant_traits *t = quant_traits_of(type);
    size_t bytes = len - 4;
    if (!t || bytes % t->type_size != 0) {
        fprintf(stderr, "quant_dump: unsupported type %u or partial block (%zu bytes)\n", type, bytes);
        free(buf);
        return 1;
    }
    int64_t n = (int64_t)(bytes / t->type_size) * t->block_size;
    /* copy the blocks to aligned memory: the block structs hold f16/float fields */
    void *blocks = malloc(bytes ? bytes : 1);
    float *values = malloc(n ? (size_t)n * sizeof(float) : 1);
    int rc = 1;
    if (blocks && values) {
        memcpy(blocks, buf + 4, bytes);
        t->dequantize_row(blocks, values, n);
        rc = write_all(out, values, (size_t)n * sizeof(float)) == 0 ? 0 : 1;
        if (rc) fprintf(stderr, "quant_dump: cannot write %s\n", out);
    }
    free(blocks);
    free(values);
    free(buf);
    return rc;
}

static int run_quantize(const char *type_arg, const char *in, const char *out)
{
    uint32_t type = (uint32_t)strtoul(type_arg, NULL, 10);
    size_t len;
    unsigned char *buf = read_all(in, &len);
    if (!buf || len % sizeof(float) != 0) {
        fprintf(stderr, "quant_dump: cannot read f32 values from %s\n", in);
        free(buf);
        return 1;
    }
    int64_t n = (int64_t)(len / sizeof(float));
    size_t bytes = quant_row_size(type, n);
    float *values = malloc(len ? len : 1);
    void *blocks = malloc(bytes ? bytes : 1);
    int rc = 1;
    if (!bytes) {
        fprintf(stderr, "quant_dump: type %u cannot hold %lld values\n", type, (long long)n);
    } else if (values && blocks) {
        memcpy(values, buf, len);
        if (quantize_row_ref(type, values, blocks, n) == bytes) rc = write_all(out, blocks, bytes) == 0 ? 0 : 1;
        if (rc) fprintf(stderr, "quant_dump: quantize or write failed\n");
    }
    free(values);
    free(blocks);
    free(buf);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "dequant") == 0) return run_dequant(argv[2], argv[3]);
    if (argc == 5 && strcmp(argv[1], "quantize") == 0) return run_quantize(argv[2], argv[3], argv[4]);
    fprintf(stderr, "usage: quant_dump dequant IN OUT | quant_dump quantize TYPE IN OUT\n");
    return 2;
}
