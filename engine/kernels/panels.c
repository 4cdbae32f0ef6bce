/*
 * panels.c - packing GGUF rows into 16-row panels and back (layout in panels.h).
 *
 * Plain byte moves driven by where each field sits in its block type, so one
 * pair of functions serves all six 32-element formats. Packing runs once per
 * matrix at load; unpacking one row serves the token-embedding lookup when
 * the embedding matrix is also the (packed) output matrix.
 */
#include "panels.h"

#include <stddef.h>
#include <string.h>

#include "../quant.h"

typedef struct {
    size_t block;     /* bytes of one GGUF block */
    int has_min;      /* m field (f16) after d */
    int has_qh;       /* 4 bytes of fifth bits */
    size_t m_at, qh_at, qs_at, qs_bytes;
} block_fields;

static int fields_of(uint32_t type, block_fields *f)
{
    memset(f, 0, sizeof *f);
    switch (type) {
    case QT_Q4_0: *f = (block_fields){sizeof(block_q4_0), 0, 0, 0, 0, offsetof(block_q4_0, qs), QK32 / 2}; return 0;
    case QT_IQ4_NL:
        *f = (block_fields){sizeof(block_iq4_nl), 0, 0, 0, 0, offsetof(block_iq4_nl, qs), QK32 / 2};
        return 0;
    case QT_Q4_1:
        *f = (block_fields){sizeof(block_q4_1), 1, 0, offsetof(block_q4_1, m), 0, offsetof(block_q4_1, qs), QK32 / 2};
        return 0;
    case QT_Q5_0:
        *f = (block_fields){sizeof(block_q5_0), 0, 1, 0, offsetof(block_q5_0, qh), offsetof(block_q5_0, qs), QK32 / 2};
        return 0;
    case QT_Q5_1:
        *f = (block_fields){sizeof(block_q5_1), 1, 1, offsetof(block_q5_1, m), offsetof(block_q5_1, qh),
                            offsetof(block_q5_1, qs), QK32 / 2};
        return 0;
    case QT_Q8_0: *f = (block_fields){sizeof(block_q8_0), 0, 0, 0, 0, offsetof(block_q8_0, qs), QK32}; return 0;
    default: return -1;
    }
}

/* Where each field of row r lives inside a record. */
static size_t rec_d(int r) { return 2 * (size_t)r; }
static size_t rec_m(int r) { return panel_rec_m_at() + 2 * (size_t)r; }
static size_t rec_qh(const block_fields *f, int r) { return panel_rec_qh_at(f->has_min) + 4 * (size_t)r; }
static size_t rec_qs(const block_fields *f, int r, int k)
{
    return panel_rec_qs_at(f->has_min, f->has_qh) + ((size_t)k * PANEL_ROWS + (size_t)r) * 4;
}

int panels_supported(uint32_t type)
{
    block_fields f;
    return fields_of(type, &f) == 0;
}

size_t panels_record_size(uint32_t type)
{
    block_fields f;
    return fields_of(type, &f) ? 0 : PANEL_ROWS * f.block;
}

size_t panels_size(uint32_t type, int n, int n_rows)
{
    size_t n_panels = ((size_t)n_rows + PANEL_ROWS - 1) / PANEL_ROWS;
    return n_panels * (size_t)(n / QK32) * panels_record_size(type);
}

/* Copies one block of row r into (pack) or out of (!pack) its record. */
static inline void move_block(const block_fields *f, int r, uint8_t *rec, uint8_t *blk, int pack)
{
#define MOVE(rec_off, blk_off, len)                                                                          \
    do {                                                                                                     \
        if (pack) memcpy(rec + (rec_off), blk + (blk_off), (len));                                           \
        else memcpy(blk + (blk_off), rec + (rec_off), (len));                                                \
    } while (0)
    MOVE(rec_d(r), 0, 2);
    if (f->has_min) MOVE(rec_m(r), f->m_at, 2);
    if (f->has_qh) MOVE(rec_qh(f, r), f->qh_at, 4);
    for (int k = 0; k < (int)f->qs_bytes / 4; k++) MOVE(rec_qs(f, r, k), f->qs_at + 4 * (size_t)k, 4);
#undef MOVE
}

void panels_pack(uint32_t type, int n, int n_rows, const void *rows, void *panels)
{
    block_fields f;
    if (fields_of(type, &f)) return;
    const int nb = n / QK32, n_panels = (n_rows + PANEL_ROWS - 1) / PANEL_ROWS;
    const size_t rec_size = PANEL_ROWS * f.block, row_bytes = (size_t)nb * f.block;
    for (int p = 0; p < n_panels; p++) {
        uint8_t *panel = (uint8_t *)panels + (size_t)p * nb * rec_size;
        const int n_here = n_rows - p * PANEL_ROWS < PANEL_ROWS ? n_rows - p * PANEL_ROWS : PANEL_ROWS;
        if (n_here < PANEL_ROWS) memset(panel, 0, (size_t)nb * rec_size); /* padding rows stay zero */
        /* row by row: reads stream, writes stay inside this panel's few KB */
        for (int r = 0; r < n_here; r++) {
            uint8_t *row = (uint8_t *)rows + (size_t)(p * PANEL_ROWS + r) * row_bytes;
            for (int b = 0; b < nb; b++) move_block(&f, r, panel + (size_t)b * rec_size, row + (size_t)b * f.block, 1);
        }
    }
}

void panels_unpack_row(uint32_t type, int n, const void *panels, int row, void *out)
{
    block_fields f;
    if (fields_of(type, &f)) return;
    const int nb = n / QK32, p = row / PANEL_ROWS, r = row % PANEL_ROWS;
    const size_t rec_size = PANEL_ROWS * f.block;
    for (int b = 0; b < nb; b++) {
        uint8_t *rec = (uint8_t *)panels + ((size_t)p * nb + b) * rec_size;
        move_block(&f, r, rec, (uint8_t *)out + (size_t)b * f.block, 0);
    }
}
