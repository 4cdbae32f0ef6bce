/*
 * panels.c - packing GGUF rows into 16-row panels and back (layout in panels.h).
 *
 * Each type with a panel layout is a list of its block's fields (where, how
 * long, in which group size); one pair of loops moves every field of every
 * block in and out of its record, so the 32-element formats and the k-quants
 * share all the code. Packing runs once per matrix at load; unpacking one
 * row serves the token-embedding lookup when the embedding matrix is also
 * the (packed) output matrix.
 */
#include "panels.h"

#include <stddef.h>
#include <string.h>

#include "../quant.h"

typedef struct {
    size_t at, len; /* bytes into the block, bytes long */
    size_t group;   /* bytes kept together per row: 2 for f16 values, else 4 */
} block_field;

#define MAX_FIELDS 5

typedef struct {
    size_t block;  /* bytes of one GGUF block */
    int elements;  /* weights per block */
    int n_fields;
    block_field field[MAX_FIELDS];
} block_layout;

#define F16(type, name) {offsetof(type, name), 2, 2}
#define BYTES(type, name) {offsetof(type, name), sizeof(((type *)0)->name), 4}

static int layout_of(uint32_t type, block_layout *l)
{
    switch (type) {
    case QT_Q4_0: *l = (block_layout){sizeof(block_q4_0), QK32, 2, {F16(block_q4_0, d), BYTES(block_q4_0, qs)}}; return 0;
    case QT_IQ4_NL:
        *l = (block_layout){sizeof(block_iq4_nl), QK32, 2, {F16(block_iq4_nl, d), BYTES(block_iq4_nl, qs)}};
        return 0;
    case QT_Q4_1:
        *l = (block_layout){sizeof(block_q4_1), QK32, 3,
                            {F16(block_q4_1, d), F16(block_q4_1, m), BYTES(block_q4_1, qs)}};
        return 0;
    case QT_Q5_0:
        *l = (block_layout){sizeof(block_q5_0), QK32, 3,
                            {F16(block_q5_0, d), BYTES(block_q5_0, qh), BYTES(block_q5_0, qs)}};
        return 0;
    case QT_Q5_1:
        *l = (block_layout){sizeof(block_q5_1), QK32, 4,
                            {F16(block_q5_1, d), F16(block_q5_1, m), BYTES(block_q5_1, qh), BYTES(block_q5_1, qs)}};
        return 0;
    case QT_Q8_0: *l = (block_layout){sizeof(block_q8_0), QK32, 2, {F16(block_q8_0, d), BYTES(block_q8_0, qs)}}; return 0;
    case QT_Q4_K:
        *l = (block_layout){sizeof(block_q4_K), QK_K, 4,
                            {F16(block_q4_K, d), F16(block_q4_K, dmin), BYTES(block_q4_K, scales), BYTES(block_q4_K, qs)}};
        return 0;
    case QT_Q5_K:
        *l = (block_layout){sizeof(block_q5_K), QK_K, 5,
                            {F16(block_q5_K, d), F16(block_q5_K, dmin), BYTES(block_q5_K, scales),
                             BYTES(block_q5_K, qh), BYTES(block_q5_K, qs)}};
        return 0;
    case QT_Q6_K:
        *l = (block_layout){sizeof(block_q6_K), QK_K, 4,
                            {BYTES(block_q6_K, ql), BYTES(block_q6_K, qh), BYTES(block_q6_K, scales), F16(block_q6_K, d)}};
        return 0;
    default: return -1;
    }
}

#undef F16
#undef BYTES

int panels_supported(uint32_t type)
{
    block_layout l;
    return layout_of(type, &l) == 0;
}

size_t panels_size(uint32_t type, int n, int n_rows)
{
    block_layout l;
    if (layout_of(type, &l)) return 0;
    size_t n_panels = ((size_t)n_rows + PANEL_ROWS - 1) / PANEL_ROWS;
    return n_panels * (size_t)(n / l.elements) * PANEL_ROWS * l.block;
}

/* Copies the `group`-byte groups of one field of row r between block and record. */
static inline void move_groups(const size_t group, const block_field *fd, int r, uint8_t *rec, uint8_t *blk, int pack)
{
    uint8_t *in_rec = rec + panel_field_at(fd->at) + (size_t)r * group, *in_blk = blk + fd->at;
    for (size_t k = 0; k < fd->len / group; k++, in_rec += PANEL_ROWS * group, in_blk += group) {
        if (pack) memcpy(in_rec, in_blk, group);
        else memcpy(in_blk, in_rec, group);
    }
}

/* Copies one block of row r into (pack) or out of (!pack) its record. */
static void move_block(const block_layout *l, int r, uint8_t *rec, uint8_t *blk, int pack)
{
    for (int f = 0; f < l->n_fields; f++) {
        /* constant group sizes: each memcpy becomes one load and one store */
        if (l->field[f].group == 2) move_groups(2, &l->field[f], r, rec, blk, pack);
        else move_groups(4, &l->field[f], r, rec, blk, pack);
    }
}

void panels_pack(uint32_t type, int n, int n_rows, const void *rows, void *panels)
{
    block_layout l;
    if (layout_of(type, &l)) return;
    const int nb = n / l.elements, n_panels = (n_rows + PANEL_ROWS - 1) / PANEL_ROWS;
    const size_t rec_size = PANEL_ROWS * l.block, row_bytes = (size_t)nb * l.block;
    for (int p = 0; p < n_panels; p++) {
        uint8_t *panel = (uint8_t *)panels + (size_t)p * nb * rec_size;
        const int n_here = n_rows - p * PANEL_ROWS < PANEL_ROWS ? n_rows - p * PANEL_ROWS : PANEL_ROWS;
        if (n_here < PANEL_ROWS) memset(panel, 0, (size_t)nb * rec_size); /* padding rows stay zero */
        /* row by row: reads stream, writes stay inside this panel's few KB */
        for (int r = 0; r < n_here; r++) {
            uint8_t *row = (uint8_t *)rows + (size_t)(p * PANEL_ROWS + r) * row_bytes;
            for (int b = 0; b < nb; b++) move_block(&l, r, panel + (size_t)b * rec_size, row + (size_t)b * l.block, 1);
        }
    }
}

void panels_unpack_row(uint32_t type, int n, const void *panels, int row, void *out)
{
    block_layout l;
    if (layout_of(type, &l)) return;
    const int nb = n / l.elements, p = row / PANEL_ROWS, r = row % PANEL_ROWS;
    const size_t rec_size = PANEL_ROWS * l.block;
    for (int b = 0; b < nb; b++) {
        uint8_t *rec = (uint8_t *)panels + ((size_t)p * nb + b) * rec_size;
        move_block(&l, r, rec, (uint8_t *)out + (size_t)b * l.block, 0);
    }
}
