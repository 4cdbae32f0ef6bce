/*
 * panels.h - the 16-row panel layout weights are repacked into at load time.
 *
 * GGUF stores a matrix row after row, each row a run of 32-element blocks.
 * The VNNI kernels want something else: one vpdpbusd that serves 16 rows at
 * once needs, in one zmm, bytes 4k..4k+3 of the same block of 16 rows (one
 * int32 lane per row). Building that on the fly costs a transpose and a
 * gather per block, which decode (one token) cannot amortise. So at load time
 * the rows are cut into panels of PANEL_ROWS rows, and block b of a panel
 * becomes one record of 16 x the block size, in this order:
 *
 *   d[16]   f16 scales of the 16 rows                       32 bytes
 *   m[16]   f16 minimums (Q4_1, Q5_1 only)                  32 bytes
 *   qh[16]  u32 fifth bits (Q5_0, Q5_1 only)                64 bytes
 *   qs      for k < qs_bytes / 4, for row r < 16:
 *           bytes 4k..4k+3 of row r's qs                    16 x qs_bytes
 *
 * Records of a panel follow each other (block 0, 1, ...) and panels follow
 * each other, so a kernel streams the matrix front to back. A last panel with
 * fewer than 16 rows is padded with zero rows (scale 0 contributes nothing).
 * Only the 32-element formats have a panel layout; the bytes are the same
 * bytes GGUF had, moved, so unpacking a row gives it back exactly.
 */
#ifndef PRBOT_PANELS_H
#define PRBOT_PANELS_H

#include <stddef.h>
#include <stdint.h>

#define PANEL_ROWS 16

/* Offsets inside a record (one definition for packer and kernels). */
static inline size_t panel_rec_m_at(void) { return 2 * PANEL_ROWS; }
static inline size_t panel_rec_qh_at(int has_min) { return (has_min ? 4 : 2) * PANEL_ROWS; }
static inline size_t panel_rec_qs_at(int has_min, int has_qh)
{
    return panel_rec_qh_at(has_min) + (has_qh ? 4 * PANEL_ROWS : 0);
}

/* 1 when `type` has a panel layout. */
int panels_supported(uint32_t type);
/* Bytes of the panel form of an n_rows x n matrix (n a multiple of 32). */
size_t panels_size(uint32_t type, int n, int n_rows);
/* Bytes of one record (one block of one panel). */
size_t panels_record_size(uint32_t type);
/* rows: n_rows GGUF rows of n elements, back to back -> panels. */
void panels_pack(uint32_t type, int n, int n_rows, const void *rows, void *panels);
/* Row `row` of the packed matrix back in its GGUF form (one row of blocks). */
void panels_unpack_row(uint32_t type, int n, const void *panels, int row, void *out);

#endif
