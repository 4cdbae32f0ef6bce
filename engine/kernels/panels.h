/*
 * panels.h - the 16-row panel layout weights are repacked into at load time.
 *
 * GGUF stores a matrix row after row, each row a run of blocks. The panel
 * kernels want something else: one multiply that serves 16 rows at once
 * needs, in one vector, the same 4 bytes of 16 rows' blocks (one int32 lane
 * per row; AVX2 takes rows 0..7 and 8..15 as two halves). Building that on
 * the fly costs a transpose per block, which decode (one token) cannot
 * amortise. So at load time the rows are cut into panels of PANEL_ROWS rows,
 * and block b of a panel (a super-block for the k-quants) becomes one record:
 * the 16 rows' blocks with every field transposed in place. A field that
 * sits at byte `at` of the block and is `len` bytes long occupies bytes
 * [16 at, 16 (at + len)) of the record, cut into groups of g bytes (2 for an
 * f16 field, 4 otherwise):
 *
 *   group k of row r  ->  record byte 16 at + (16 k + r) g
 *
 * so a record is exactly 16 blocks long. For example
 *
 *   Q4_0   d[16] f16 | qs: 4 groups x 16 rows x 4 bytes
 *   Q5_1   d[16] | m[16] | qh: 16 rows x u32 | qs: 4 groups x 16 rows x 4 bytes
 *   Q4_K   d[16] | dmin[16] | scales: 3 groups x 16 rows x 4 bytes (the packed
 *          6-bit scales and mins) | qs: 32 groups x 16 rows x 4 bytes  = 2304
 *   Q5_K   as Q4_K with qh (8 groups x 16 rows x 4 bytes) before qs  = 2816
 *   Q6_K   ql: 32 groups | qh: 16 groups | scales: 4 groups (16 rows x 4
 *          bytes each) | d[16] f16                                    = 3360
 *
 * Records of a panel follow each other (block 0, 1, ...) and panels follow
 * each other, so a kernel streams the matrix front to back. A last panel with
 * fewer than 16 rows is padded with zero rows (scale 0 contributes nothing).
 * The bytes are the same bytes GGUF had, moved, so the packed matrix is as
 * big as the file's and unpacking a row gives it back exactly. The k-quant
 * scales stay packed: unpacking them takes ~20 vector ops per record for 16
 * rows, while unpacked bytes would make every record 1.5-3% larger, and
 * decode is bound by the bytes it streams.
 */
#ifndef PRBOT_PANELS_H
#define PRBOT_PANELS_H

#include <stddef.h>
#include <stdint.h>

#define PANEL_ROWS 16

/* Where the field at byte `at` of a block starts inside a record (one rule for packer and kernels). */
static inline size_t panel_field_at(size_t at) { return PANEL_ROWS * at; }

/* 1 when `type` has a panel layout. */
int panels_supported(uint32_t type);
/* Bytes of the panel form of an n_rows x n matrix (n a multiple of the block size). */
size_t panels_size(uint32_t type, int n, int n_rows);
/* rows: n_rows GGUF rows of n elements, back to back -> panels. */
void panels_pack(uint32_t type, int n, int n_rows, const void *rows, void *panels);
/* Row `row` of the packed matrix back in its GGUF form (one row of blocks). */
void panels_unpack_row(uint32_t type, int n, const void *panels, int row, void *out);

#endif
