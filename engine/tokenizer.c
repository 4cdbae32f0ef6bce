/*
 * tokenizer.c - SentencePiece-style and byte-level BPE tokenizers over GGUF
 * vocabularies, bit-exact with the reference implementation's test vectors.
 *
 * Encoding runs in three stages:
 *  1. Special tokens. Control, unknown and user-defined token texts are cut
 *     out of the text first, longest token first, each one splitting every
 *     remaining plain-text fragment at its leftmost non-overlapping matches.
 *     Without parse_special only user-defined tokens are cut (the reference
 *     tokenizer always pre-splits those). Phi-3 models drop the whitespace
 *     after their special tokens (mark_rstrip_specials).
 *  2. Each plain fragment is tokenized on its own:
 *     - SPM ("llama"): spaces become U+2581 (plus one in front when the
 *       fragment starts the text or follows a special token), the text is
 *       split into characters, and the adjacent pair whose concatenation is
 *       the highest-scoring vocabulary entry is merged until none is left;
 *       characters outside the vocabulary fall back to <0xXX> byte tokens.
 *     - BPE ("gpt2"): the pre-tokenizer (engine/pretokenize.c) splits the
 *       fragment into words, each word's bytes are mapped to the GPT-2
 *       printable-unicode alphabet, and the pair with the lowest merge rank
 *       is merged until none is left.
 *  3. The pieces are looked up in the vocabulary.
 * Both merge loops use a binary heap of candidate pairs with lazy deletion
 * (a popped pair whose sides changed is skipped), so they are O(n log n).
 *
 * Lookups go through two open-addressing hash tables built at load time:
 * token text -> id, and merge pair -> rank (a pair is hashed as the merge
 * line "left right" without building that string).
 */
#define _GNU_SOURCE /* memmem */
#include "tokenizer.h"
#include "strhash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "pretokenize.h"
#include "unicode.h"

enum { MODEL_SPM, MODEL_BPE };

/* Open-addressing table of indexes into a (blob, off, len) string list. */
typedef struct {
    const char *blob;
    const uint32_t *off, *len;
    int32_t *slots; /* -1 = empty */
    size_t mask;
} str_table;

typedef struct {
    char *blob;
    uint32_t *off, *len;
    size_t n, blob_size;
} str_list;

struct tokenizer {
    int model;
    int32_t n_vocab;
    str_list tokens;
    str_table token_index;
    float *scores;
    uint8_t *attr;
    uint8_t *eog;
    /* BPE merges: the line "left right", and where "right" starts */
    str_list merges;
    uint32_t *merge_split;
    str_table merge_index;
    /* special tokens, longest text first */
    int32_t *specials;
    int n_specials;
    uint8_t *rstrip; /* NULL, or per token: whitespace after it in the text is dropped */
    int32_t bos, eos, eot, unk;
    int add_bos, add_space_prefix, ignore_merges;
    pretokenizer_kind pre;
    int32_t byte_token[256];  /* SPM: id of <0xXX> */
    uint32_t byte_to_cp[256]; /* GPT-2 bytes_to_unicode */
    int16_t cp_to_byte[512];  /* its inverse (-1 where undefined) */
};

/* ---- hashing ---- */

/* Keyed (strhash.h): the tokens and merges come from the model file, and a
 * fixed hash would let a file choose texts that all fall into one cluster of
 * slots, which costs O(n^2) probes to load and long probes on every lookup. */

static int table_init(str_table *t, const str_list *l)
{
    size_t cap = 16;
    while (cap < l->n * 2) cap <<= 1;
    t->slots = malloc(cap * sizeof *t->slots);
    if (!t->slots) return -1;
    memset(t->slots, 0xFF, cap * sizeof *t->slots);
    t->mask = cap - 1;
    t->blob = l->blob;
    t->off = l->off;
    t->len = l->len;
    return 0;
}

static int key_equals(const str_table *t, int32_t idx, const char *s, size_t n)
{
    return t->len[idx] == n && memcmp(t->blob + t->off[idx], s, n) == 0;
}

/* Inserts index idx; an existing equal key is replaced only if `replace`. */
static void table_insert(str_table *t, int32_t idx, int replace)
{
    const char *s = t->blob + t->off[idx];
    size_t n = t->len[idx];
    for (size_t i = strhash(s, n) & t->mask;; i = (i + 1) & t->mask) {
        int32_t cur = t->slots[i];
        if (cur < 0) {
            t->slots[i] = idx;
            return;
        }
        if (key_equals(t, cur, s, n)) {
            if (replace) t->slots[i] = idx;
            return;
        }
    }
}

static int32_t table_find(const str_table *t, const char *s, size_t n)
{
    if (!t->slots) return -1;
    for (size_t i = strhash(s, n) & t->mask;; i = (i + 1) & t->mask) {
        int32_t cur = t->slots[i];
        if (cur < 0) return -1;
        if (key_equals(t, cur, s, n)) return cur;
    }
}

static int32_t token_lookup(const tokenizer *t, const char *s, size_t n) { return table_find(&t->token_index, s, n); }

/* Rank of the merge "l r", -1 if there is none. */
static int32_t merge_rank(const tokenizer *t, const char *l, size_t ln, const char *r, size_t rn)
{
    const str_table *tb = &t->merge_index;
    if (!tb->slots) return -1;
    strhash_state hs;
    strhash_init(&hs);
    strhash_update(&hs, l, ln);
    strhash_update(&hs, " ", 1);
    strhash_update(&hs, r, rn);
    uint64_t h = strhash_final(&hs);
    for (size_t i = h & tb->mask;; i = (i + 1) & tb->mask) {
        int32_t cur = tb->slots[i];
        if (cur < 0) return -1;
        const char *m = tb->blob + tb->off[cur];
        if (tb->len[cur] == ln + 1 + rn && t->merge_split[cur] == ln + 1 && memcmp(m, l, ln) == 0 &&
            memcmp(m + ln + 1, r, rn) == 0)
            return cur;
    }
}

/* ---- loading ---- */

static int list_from_kv(str_list *l, const gguf_kv *kv)
{
    size_t total = 0;
    l->n = (size_t)kv->array_len;
    for (size_t i = 0; i < l->n; i++) total += kv->strings[i].len ? kv->strings[i].len : 32;
    l->blob = malloc(total ? total : 1);
    l->off = malloc((l->n ? l->n : 1) * sizeof *l->off);
    l->len = malloc((l->n ? l->n : 1) * sizeof *l->len);
    if (!l->blob || !l->off || !l->len || total > UINT32_MAX) return -1;
    size_t pos = 0;
    for (size_t i = 0; i < l->n; i++) {
        gguf_str s = kv->strings[i];
        l->off[i] = (uint32_t)pos;
        if (s.len) {
            memcpy(l->blob + pos, s.ptr, s.len);
            l->len[i] = (uint32_t)s.len;
        } else { /* the reference renames empty tokens so they stay unique */
            int n = snprintf(l->blob + pos, 32, "[EMPTY_%zu]", i);
            l->len[i] = (uint32_t)(n < 32 ? n : 31);
        }
        pos += l->len[i];
    }
    l->blob_size = pos;
    return 0;
}

static void list_free(str_list *l)
{
    free(l->blob);
    free(l->off);
    free(l->len);
}

static const char *token_text(const tokenizer *t, int32_t id) { return t->tokens.blob + t->tokens.off[id]; }
static size_t token_len(const tokenizer *t, int32_t id) { return t->tokens.len[id]; }

static const gguf_kv *find_array(const gguf_file *f, const char *key, gguf_value_type type)
{
    const gguf_kv *kv = gguf_kv_find(f, key);
    return kv && kv->type == GGUF_VALUE_ARRAY && kv->array_type == type ? kv : NULL;
}

static int is_integer_type(gguf_value_type type)
{
    return type <= GGUF_VALUE_INT32 || type == GGUF_VALUE_UINT64 || type == GGUF_VALUE_INT64;
}

static int load_vocab(tokenizer *t, const gguf_file *f, char *err, size_t errlen)
{
    const gguf_kv *tokens = find_array(f, "tokenizer.ggml.tokens", GGUF_VALUE_STRING);
    if (!tokens || tokens->array_len == 0 || tokens->array_len > INT32_MAX / 2) {
        err_set(err, errlen, "%s: no usable tokenizer.ggml.tokens array", f->path);
        return -1;
    }
    t->n_vocab = (int32_t)tokens->array_len;
    t->scores = calloc((size_t)t->n_vocab, sizeof *t->scores);
    t->attr = malloc((size_t)t->n_vocab);
    t->eog = calloc((size_t)t->n_vocab, 1);
    if (!t->scores || !t->attr || !t->eog || list_from_kv(&t->tokens, tokens) ||
        table_init(&t->token_index, &t->tokens))
        goto oom;
    for (int32_t i = 0; i < t->n_vocab; i++) table_insert(&t->token_index, i, 1); /* last duplicate wins */

    const gguf_kv *scores = find_array(f, "tokenizer.ggml.scores", GGUF_VALUE_FLOAT32);
    if (scores && scores->array_len == tokens->array_len)
        for (int32_t i = 0; i < t->n_vocab; i++) t->scores[i] = gguf_array_f32(scores, (uint64_t)i);

    const gguf_kv *types = gguf_kv_find(f, "tokenizer.ggml.token_type");
    int have_types = types && types->type == GGUF_VALUE_ARRAY && is_integer_type(types->array_type) &&
                     types->array_len == tokens->array_len;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        int64_t ty = have_types ? gguf_array_int(types, (uint64_t)i) : TOKEN_NORMAL;
        t->attr[i] = ty >= TOKEN_NORMAL && ty <= TOKEN_BYTE ? (uint8_t)ty : 0;
    }
    return 0;
oom:
    err_set(err, errlen, "out of memory loading the vocabulary of %s", f->path);
    return -1;
}

static int load_merges(tokenizer *t, const gguf_file *f, char *err, size_t errlen)
{
    const gguf_kv *merges = find_array(f, "tokenizer.ggml.merges", GGUF_VALUE_STRING);
    if (!merges) {
        err_set(err, errlen, "%s: BPE tokenizer without tokenizer.ggml.merges", f->path);
        return -1;
    }
    if (list_from_kv(&t->merges, merges) || table_init(&t->merge_index, &t->merges)) goto oom;
    t->merge_split = malloc((t->merges.n ? t->merges.n : 1) * sizeof *t->merge_split);
    if (!t->merge_split) goto oom;
    for (size_t i = 0; i < t->merges.n; i++) {
        const char *m = t->merges.blob + t->merges.off[i];
        const char *space = t->merges.len[i] > 1 ? memchr(m + 1, ' ', t->merges.len[i] - 1) : NULL;
        t->merge_split[i] = space ? (uint32_t)(space - m + 1) : 0;
        if (space) table_insert(&t->merge_index, (int32_t)i, 0); /* first duplicate wins */
    }
    return 0;
oom:
    err_set(err, errlen, "out of memory loading the merges of %s", f->path);
    return -1;
}

/* Reads a token id key; ids outside the vocabulary keep the default. */
static int32_t read_token_id(const tokenizer *t, const gguf_file *f, const char *key, int32_t def)
{
    int64_t v;
    if (gguf_get_i64(f, key, &v) == 0 && v >= 0 && v < t->n_vocab) return (int32_t)v;
    return def;
}

static void read_flag(const gguf_file *f, const char *key, int *flag)
{
    int v;
    if (gguf_get_bool(f, key, &v) == 0) *flag = v != 0;
}

static void init_byte_maps(tokenizer *t)
{
    int extra = 0;
    for (int i = 0; i < 512; i++) t->cp_to_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        t->byte_to_cp[b] = printable ? (uint32_t)b : (uint32_t)(256 + extra++);
        t->cp_to_byte[t->byte_to_cp[b]] = (int16_t)b;
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_token[b] = token_lookup(t, name, 6);
        if (t->byte_token[b] < 0) {
            char c = (char)b;
            t->byte_token[b] = token_lookup(t, &c, 1);
        }
    }
}

/* End-of-generation tokens by text; the reference also forces them to be
 * control tokens (so they are not matched in plain text). */
static void mark_end_of_generation(tokenizer *t)
{
    static const char *const eog_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>",
                                            "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>",
                                            "<|end_of_text|>", "<end_of_utterance>", NULL};
    for (const char *const *s = eog_texts; *s; s++) {
        int32_t id = token_lookup(t, *s, strlen(*s));
        if (id < 0) continue;
        t->eog[id] = 1;
        t->attr[id] = TOKEN_CONTROL;
    }
    int32_t end_of_sentence = token_lookup(t, "</s>", 4);
    if (end_of_sentence >= 0 && t->attr[end_of_sentence] == TOKEN_CONTROL) t->eog[end_of_sentence] = 1;
    if (t->eos >= 0) t->eog[t->eos] = 1;
    if (t->eot >= 0) t->eog[t->eot] = 1;
}

typedef struct {
    uint32_t len;
    int32_t id;
} special_key;

static int compare_special(const void *a, const void *b)
{
    const special_key *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Phi-3 models strip the whitespace that follows their special tokens
 * (rstrip in their tokenizer.json): "<|user|>\nHi" is <|user|> Hi. The
 * reference engine gives this to every special token but <unk>, <s> and
 * <|endoftext|> when general.name contains "phi-3" or "phi3" in any case,
 * and so must we, or a Phi-3 prompt gets a newline token after every role
 * marker that the model never saw there. Phi-3.5 and Phi-4 files are named
 * differently and keep their whitespace in the reference too. */
static int mark_rstrip_specials(tokenizer *t, const gguf_file *f)
{
    gguf_str name;
    char lower[256];
    if (gguf_get_str(f, "general.name", &name)) return 0;
    size_t n = name.len < sizeof lower - 1 ? (size_t)name.len : sizeof lower - 1;
    for (size_t i = 0; i < n; i++) {
        char c = name.ptr[i];
        lower[i] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
    }
    lower[n] = 0;
    if (!strstr(lower, "phi-3") && !strstr(lower, "phi3")) return 0;
    t->rstrip = calloc((size_t)t->n_vocab, 1);
    if (!t->rstrip) return -1;
    for (int i = 0; i < t->n_specials; i++) t->rstrip[t->specials[i]] = 1;
    static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
    for (size_t k = 0; k < sizeof keep / sizeof keep[0]; k++) {
        int32_t id = token_lookup(t, keep[k], strlen(keep[k]));
        if (id >= 0) t->rstrip[id] = 0;
    }
    int32_t eos_text = token_lookup(t, "</s>", 4);
    if (eos_text >= 0) t->rstrip[eos_text] = 1;
    return 0;
}

/* Control, user-defined and unknown tokens, longest text first. */
static int collect_specials(tokenizer *t)
{
    special_key *keys = malloc((size_t)t->n_vocab * sizeof *keys);
    t->specials = malloc((size_t)t->n_vocab * sizeof *t->specials);
    if (!keys || !t->specials) {
        free(keys);
        return -1;
    }
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (t->attr[i] == TOKEN_CONTROL || t->attr[i] == TOKEN_USER_DEFINED || t->attr[i] == TOKEN_UNKNOWN)
            keys[t->n_specials++] = (special_key){t->tokens.len[i], i};
    qsort(keys, (size_t)t->n_specials, sizeof *keys, compare_special);
    for (int i = 0; i < t->n_specials; i++) t->specials[i] = keys[i].id;
    free(keys);
    return 0;
}

int tokenizer_load(tokenizer **out, const gguf_file *f, char *err, size_t errlen)
{
    *out = NULL;
    gguf_str model = {0}, pre = {0};
    if (gguf_get_str(f, "tokenizer.ggml.model", &model)) {
        err_set(err, errlen, "%s: no tokenizer.ggml.model in the metadata", f->path);
        return -1;
    }
    int is_spm = gguf_str_eq(model, "llama"), is_bpe = gguf_str_eq(model, "gpt2");
    if (!is_spm && !is_bpe) {
        char name[96];
        err_set(err, errlen, "%s: tokenizer model '%s' is not supported (only llama and gpt2)", f->path,
                gguf_str_printable(name, sizeof name, model));
        return -1;
    }
    tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        err_set(err, errlen, "out of memory loading the tokenizer");
        return -1;
    }
    t->model = is_spm ? MODEL_SPM : MODEL_BPE;
    t->eot = -1;
    if (load_vocab(t, f, err, errlen)) goto fail;
    if (is_spm) {
        t->bos = 1, t->eos = 2, t->unk = 0;
        t->add_bos = 1, t->add_space_prefix = 1;
        t->pre = PRETOK_DEFAULT;
    } else {
        int has_pre = gguf_get_str(f, "tokenizer.ggml.pre", &pre) == 0;
        if (pretokenizer_from_name(has_pre ? pre.ptr : NULL, has_pre ? (size_t)pre.len : 0, &t->pre,
                                   &t->ignore_merges, &t->add_bos)) {
            char name[96], names[1024];
            pretokenizer_names(names, sizeof names);
            err_set(err, errlen, "%s: tokenizer.ggml.pre '%s' is not supported (supported: %s)",
                    f->path, gguf_str_printable(name, sizeof name, pre), names);
            goto fail;
        }
        t->bos = 11, t->eos = 11, t->unk = -1;
        if (load_merges(t, f, err, errlen)) goto fail;
    }
    if (t->bos >= t->n_vocab) t->bos = -1;
    if (t->eos >= t->n_vocab) t->eos = -1;
    if (t->unk >= t->n_vocab) t->unk = -1;
    t->bos = read_token_id(t, f, "tokenizer.ggml.bos_token_id", t->bos);
    t->eos = read_token_id(t, f, "tokenizer.ggml.eos_token_id", t->eos);
    t->eot = read_token_id(t, f, "tokenizer.ggml.eot_token_id", t->eot);
    t->unk = read_token_id(t, f, "tokenizer.ggml.unknown_token_id", t->unk);
    read_flag(f, "tokenizer.ggml.add_bos_token", &t->add_bos);
    read_flag(f, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix);
    init_byte_maps(t);
    mark_end_of_generation(t);
    if (collect_specials(t) || mark_rstrip_specials(t, f)) {
        err_set(err, errlen, "out of memory loading the tokenizer");
        goto fail;
    }
    *out = t;
    return 0;
fail:
    tokenizer_free(t);
    return -1;
}

void tokenizer_free(tokenizer *t)
{
    if (!t) return;
    list_free(&t->tokens);
    list_free(&t->merges);
    free(t->token_index.slots);
    free(t->merge_index.slots);
    free(t->merge_split);
    free(t->scores);
    free(t->attr);
    free(t->eog);
    free(t->specials);
    free(t->rstrip);
    free(t);
}

int tokenizer_n_vocab(const tokenizer *t) { return t->n_vocab; }
int32_t tokenizer_bos(const tokenizer *t) { return t->bos; }
int32_t tokenizer_eos(const tokenizer *t) { return t->eos; }
int tokenizer_add_bos(const tokenizer *t) { return t->add_bos; }
int tokenizer_is_eog(const tokenizer *t, int32_t id) { return id >= 0 && id < t->n_vocab && t->eog[id]; }
int32_t tokenizer_find(const tokenizer *t, const char *text) { return token_lookup(t, text, strlen(text)); }

/* ---- shared encoding machinery ---- */

typedef struct {
    int32_t *out;
    int cap, n;
} token_sink;

static void emit(token_sink *s, int32_t id)
{
    if (s->n < s->cap) s->out[s->n] = id;
    s->n++;
}

typedef struct {
    size_t start, n; /* bytes in the word buffer */
    int prev, next;
} symbol;

typedef struct {
    float score; /* higher merges first (BPE: minus the rank) */
    int left, right;
    size_t size;
} bigram;

/* Scratch buffers reused across the words of one encode call. */
typedef struct {
    symbol *syms;
    size_t syms_cap;
    bigram *heap;
    size_t heap_n, heap_cap;
    char *buf;
    size_t buf_n, buf_cap;
    uint32_t *cps;
    size_t cps_cap;
} workspace;

static void workspace_free(workspace *w)
{
    free(w->syms);
    free(w->heap);
    free(w->buf);
    free(w->cps);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

static int buf_append(workspace *w, const char *s, size_t n)
{
    if (grow((void **)&w->buf, &w->buf_cap, w->buf_n + n, 1)) return -1;
    memcpy(w->buf + w->buf_n, s, n);
    w->buf_n += n;
    return 0;
}

static int bigram_before(const bigram *a, const bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(workspace *w, bigram b)
{
    if (grow((void **)&w->heap, &w->heap_cap, w->heap_n + 1, sizeof b)) return -1;
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bigram_before(&b, &w->heap[parent])) break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = b;
    return 0;
}

static bigram heap_pop(workspace *w)
{
    bigram top = w->heap[0], last = w->heap[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bigram_before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!bigram_before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

/* Splits w->buf[0..buf_n) into one symbol per UTF-8 character. */
static int split_symbols(workspace *w, size_t *n_syms)
{
    size_t n = 0;
    for (size_t pos = 0; pos < w->buf_n; n++) {
        if (grow((void **)&w->syms, &w->syms_cap, n + 1, sizeof *w->syms)) return -1;
        size_t len = utf8_seq_len((unsigned char)w->buf[pos]);
        if (len > w->buf_n - pos) len = w->buf_n - pos;
        w->syms[n] = (symbol){pos, len, (int)n - 1, pos + len == w->buf_n ? -1 : (int)n + 1};
        pos += len;
    }
    *n_syms = n;
    return 0;
}

/* Scores a candidate pair: SPM by the merged token's score, BPE by rank. */
static int try_pair(const tokenizer *t, workspace *w, int left, int right)
{
    if (left < 0 || right < 0) return 0;
    const symbol *l = &w->syms[left], *r = &w->syms[right];
    bigram b = {0, left, right, l->n + r->n};
    if (t->model == MODEL_SPM) {
        int32_t id = token_lookup(t, w->buf + l->start, l->n + r->n);
        if (id < 0) return 0;
        b.score = t->scores[id];
    } else {
        int32_t rank = merge_rank(t, w->buf + l->start, l->n, w->buf + r->start, r->n);
        if (rank < 0) return 0;
        b.score = -(float)rank;
    }
    return heap_push(w, b);
}

/* Merges the symbols of w->buf until no candidate pair is left. */
static int merge_symbols(const tokenizer *t, workspace *w, size_t n_syms)
{
    w->heap_n = 0;
    for (size_t i = 1; i < n_syms; i++)
        if (try_pair(t, w, (int)i - 1, (int)i)) return -1;
    while (w->heap_n) {
        bigram b = heap_pop(w);
        symbol *l = &w->syms[b.left], *r = &w->syms[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size || l->next != b.right) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) w->syms[r->next].prev = b.left;
        if (try_pair(t, w, l->prev, b.left) || try_pair(t, w, b.left, l->next)) return -1;
    }
    return 0;
}

/* ---- SentencePiece ---- */

static void spm_emit_symbol(const tokenizer *t, const char *s, size_t n, token_sink *sink)
{
    int32_t id = token_lookup(t, s, n);
    if (id >= 0) {
        emit(sink, id);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int32_t b = t->byte_token[(unsigned char)s[i]];
        emit(sink, b >= 0 ? b : t->unk >= 0 ? t->unk : 0);
    }
}

static int spm_encode(const tokenizer *t, workspace *w, const char *text, size_t len, int space_prefix,
                      token_sink *sink)
{
    static const char space_mark[] = "\xE2\x96\x81"; /* U+2581 */
    w->buf_n = 0;
    if (space_prefix && buf_append(w, space_mark, 3)) return -1;
    for (size_t i = 0; i < len; i++)
        if (text[i] == ' ' ? buf_append(w, space_mark, 3) : buf_append(w, text + i, 1)) return -1;
    size_t n_syms;
    if (split_symbols(w, &n_syms) || merge_symbols(t, w, n_syms)) return -1;
    for (int i = n_syms ? 0 : -1; i >= 0; i = w->syms[i].next)
        spm_emit_symbol(t, w->buf + w->syms[i].start, w->syms[i].n, sink);
    return 0;
}

/* ---- byte-level BPE ---- */

/* Re-encodes codepoints as UTF-8, then each byte as its GPT-2 character. */
static int bpe_word_to_buf(const tokenizer *t, workspace *w, const uint32_t *cps, size_t n)
{
    w->buf_n = 0;
    for (size_t i = 0; i < n; i++) {
        char bytes[4];
        int nb = utf8_encode(cps[i], bytes);
        for (int k = 0; k < nb; k++) {
            char mapped[4];
            int nm = utf8_encode(t->byte_to_cp[(unsigned char)bytes[k]], mapped);
            if (buf_append(w, mapped, (size_t)nm)) return -1;
        }
    }
    return 0;
}

static void bpe_emit_symbol(const tokenizer *t, const char *s, size_t n, token_sink *sink)
{
    int32_t id = token_lookup(t, s, n);
    if (id >= 0) {
        emit(sink, id);
        return;
    }
    for (size_t i = 0; i < n; i++) { /* as the reference: single bytes that happen to be tokens */
        int32_t b = token_lookup(t, s + i, 1);
        if (b >= 0) emit(sink, b);
    }
}

static int bpe_encode_word(const tokenizer *t, workspace *w, const uint32_t *cps, size_t n, token_sink *sink)
{
    if (bpe_word_to_buf(t, w, cps, n)) return -1;
    if (t->ignore_merges) {
        int32_t id = token_lookup(t, w->buf, w->buf_n);
        if (id >= 0) {
            emit(sink, id);
            return 0;
        }
    }
    size_t n_syms;
    if (split_symbols(w, &n_syms) || merge_symbols(t, w, n_syms)) return -1;
    for (int i = n_syms ? 0 : -1; i >= 0; i = w->syms[i].next)
        bpe_emit_symbol(t, w->buf + w->syms[i].start, w->syms[i].n, sink);
    return 0;
}

static int bpe_encode(const tokenizer *t, workspace *w, const char *text, size_t len, token_sink *sink)
{
    if (grow((void **)&w->cps, &w->cps_cap, len + 1, sizeof *w->cps)) return -1;
    size_t n = 0;
    for (size_t pos = 0; pos < len;) pos += utf8_decode(text + pos, len - pos, &w->cps[n++]);
    size_t *ends;
    int n_words = pretokenize(t->pre, w->cps, n, &ends);
    if (n_words < 0) return -1;
    size_t start = 0;
    for (int i = 0; i < n_words; i++) {
        if (bpe_encode_word(t, w, w->cps + start, ends[i] - start, sink)) {
            free(ends);
            return -1;
        }
        start = ends[i];
    }
    free(ends);
    return 0;
}

/* ---- special tokens ---- */

typedef struct {
    size_t start, len;
    int32_t token; /* -1: plain text */
} fragment;

typedef struct {
    fragment *items;
    size_t n, cap;
} fragment_list;

static int fragment_push(fragment_list *l, fragment f)
{
    if (grow((void **)&l->items, &l->cap, l->n + 1, sizeof f)) return -1;
    l->items[l->n++] = f;
    return 0;
}

/* Bit (a << 8 | b) is set when bytes a, b occur next to each other. */
static void byte_pairs_of(const char *text, size_t len, uint64_t *pairs, uint64_t *singles)
{
    memset(pairs, 0, 65536 / 8);
    memset(singles, 0, 256 / 8);
    for (size_t i = 0; i < len; i++) {
        unsigned a = (unsigned char)text[i];
        singles[a >> 6] |= 1ull << (a & 63);
        if (i + 1 < len) {
            unsigned p = a << 8 | (unsigned char)text[i + 1];
            pairs[p >> 6] |= 1ull << (p & 63);
        }
    }
}

static int may_occur(const char *s, size_t n, const uint64_t *pairs, const uint64_t *singles)
{
    unsigned a = (unsigned char)s[0];
    if (!(singles[a >> 6] >> (a & 63) & 1)) return 0;
    for (size_t i = 0; i + 1 < n; i++) {
        unsigned p = (unsigned)(unsigned char)s[i] << 8 | (unsigned char)s[i + 1];
        if (!(pairs[p >> 6] >> (p & 63) & 1)) return 0;
    }
    return 1;
}

/* Cuts every occurrence of token `id` out of the plain fragments of *cur. */
static int split_on_token(const tokenizer *t, const char *text, int32_t id, fragment_list *cur, fragment_list *next)
{
    const char *tok = token_text(t, id);
    size_t tn = token_len(t, id);
    next->n = 0;
    for (size_t k = 0; k < cur->n; k++) {
        fragment f = cur->items[k];
        if (f.token >= 0) {
            if (fragment_push(next, f)) return -1;
            continue;
        }
        size_t pos = f.start, end = f.start + f.len;
        while (pos < end) {
            const char *hit = memmem(text + pos, end - pos, tok, tn);
            size_t at = hit ? (size_t)(hit - text) : end;
            if (at > pos && fragment_push(next, (fragment){pos, at - pos, -1})) return -1;
            if (!hit) break;
            if (fragment_push(next, (fragment){at, tn, id})) return -1;
            pos = at + tn;
            if (t->rstrip && t->rstrip[id])
                while (pos < end && (text[pos] == ' ' || (text[pos] >= '\t' && text[pos] <= '\r'))) pos++;
        }
    }
    fragment_list swap = *cur;
    *cur = *next;
    *next = swap;
    return 0;
}

static int partition_specials(const tokenizer *t, const char *text, size_t len, int parse_special,
                              fragment_list *frags)
{
    fragment_list spare = {0};
    uint64_t *pairs = malloc(65536 / 8 + 256 / 8);
    if (!pairs || fragment_push(frags, (fragment){0, len, -1})) goto fail;
    uint64_t *singles = pairs + 65536 / 64;
    byte_pairs_of(text, len, pairs, singles);
    for (int i = 0; i < t->n_specials; i++) {
        int32_t id = t->specials[i];
        if (!parse_special && t->attr[id] != TOKEN_USER_DEFINED) continue;
        if (!may_occur(token_text(t, id), token_len(t, id), pairs, singles)) continue;
        if (split_on_token(t, text, id, frags, &spare)) goto fail;
    }
    free(pairs);
    free(spare.items);
    return 0;
fail:
    free(pairs);
    free(spare.items);
    return -1;
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_bos, int parse_special,
                     int32_t *out, int cap)
{
    token_sink sink = {out, cap < 0 ? 0 : cap, 0};
    fragment_list frags = {0};
    workspace w = {0};
    int rc = 0;
    if (add_bos && t->bos >= 0) emit(&sink, t->bos);
    if (len && partition_specials(t, text, len, parse_special, &frags)) rc = -1;
    int after_special = 1; /* SPM: the text start counts as following a special token */
    for (size_t k = 0; rc == 0 && k < frags.n; k++) {
        fragment f = frags.items[k];
        if (f.token >= 0) {
            emit(&sink, f.token);
            after_special = 1;
            continue;
        }
        if (t->model == MODEL_SPM)
            rc = spm_encode(t, &w, text + f.start, f.len, t->add_space_prefix && after_special, &sink);
        else
            rc = bpe_encode(t, &w, text + f.start, f.len, &sink);
        after_special = 0;
    }
    free(frags.items);
    workspace_free(&w);
    return rc ? -1 : sink.n;
}

/* ---- decoding ---- */

static int copy_out(char *buf, int cap, int n, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++, n++)
        if (n < cap) buf[n] = s[i];
    return n;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* "<0xAB>" -> 0xAB, or -1. */
static int byte_token_value(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = hex_value(s[3]), lo = hex_value(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static int spm_piece(const char *s, size_t n, char *buf, int cap)
{
    int out = 0;
    for (size_t i = 0; i < n;) {
        if (i + 3 <= n && memcmp(s + i, "\xE2\x96\x81", 3) == 0) {
            out = copy_out(buf, cap, out, " ", 1);
            i += 3;
        } else {
            out = copy_out(buf, cap, out, s + i, 1);
            i++;
        }
    }
    return out;
}

static int bpe_piece(const tokenizer *t, const char *s, size_t n, char *buf, int cap)
{
    int out = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t used = utf8_decode(s + i, n - i, &cp);
        if (cp < 512 && t->cp_to_byte[cp] >= 0) {
            char b = (char)t->cp_to_byte[cp];
            out = copy_out(buf, cap, out, &b, 1);
        } else {
            out = copy_out(buf, cap, out, s + i, used);
        }
        i += used;
    }
    return out;
}

int tokenizer_token_type(const tokenizer *t, int32_t id) { return id >= 0 && id < t->n_vocab ? t->attr[id] : 0; }

int tokenizer_piece(const tokenizer *t, int32_t id, int render_special, char *buf, int cap)
{
    if (id < 0 || id >= t->n_vocab) return 0;
    if (cap < 0) cap = 0;
    const char *s = token_text(t, id);
    size_t n = token_len(t, id);
    switch (t->attr[id]) {
    case TOKEN_CONTROL:
    case TOKEN_UNKNOWN: return render_special ? copy_out(buf, cap, 0, s, n) : 0;
    case TOKEN_USER_DEFINED: return copy_out(buf, cap, 0, s, n);
    case TOKEN_NORMAL: return t->model == MODEL_SPM ? spm_piece(s, n, buf, cap) : bpe_piece(t, s, n, buf, cap);
    case TOKEN_BYTE:
        if (t->model == MODEL_SPM) {
            int v = byte_token_value(s, n);
            char b = (char)v;
            return v < 0 ? 0 : copy_out(buf, cap, 0, &b, 1);
        }
        return bpe_piece(t, s, n, buf, cap);
    default: return 0;
    }
}

/* ---- streaming ---- */

void tokenizer_stream_init(tokenizer_stream *s) { memset(s, 0, sizeof *s); }

/* Appends one character's bytes to out[0..cap-1) at *n, keeping room for
 * the NUL; a character that does not fit is left out whole, so even a short
 * buffer holds valid UTF-8. */
static void stream_put(char *out, int cap, int *n, const char *s, size_t len)
{
    if ((size_t)*n + len >= (size_t)cap) return;
    memcpy(out + *n, s, len);
    *n += (int)len;
}

/* Writes the complete, valid UTF-8 of bytes[0..len) to out (invalid bytes
 * become U+FFFD) and returns how many trailing bytes are an unfinished
 * sequence to keep for later. */
static size_t stream_emit_valid(const char *bytes, size_t len, char *out, int cap, int *n)
{
    size_t complete = utf8_complete_prefix(bytes, len);
    for (size_t i = 0; i < complete;) {
        size_t used = utf8_valid_len(bytes + i, complete - i);
        if (used) stream_put(out, cap, n, bytes + i, used);
        else stream_put(out, cap, n, "\xEF\xBF\xBD", 3);
        i += used ? used : 1;
    }
    return len - complete;
}

int tokenizer_stream_feed(const tokenizer *t, tokenizer_stream *s, int32_t id, char *out, int cap)
{
    int n = 0;
    if (cap <= 0) return 0;
    out[0] = 0;
    if (id == t->bos) { /* a new sequence: SPM drops the space it put in front */
        s->first = t->model == MODEL_SPM && t->add_space_prefix;
        return 0;
    }
    char small[256];
    int len = tokenizer_piece(t, id, 0, small, sizeof small);
    char *piece = small;
    if (len > (int)sizeof small) {
        piece = malloc((size_t)len);
        if (!piece) return 0;
        tokenizer_piece(t, id, 0, piece, len);
    }
    const char *p = piece;
    if (len > 0 && s->first) {
        if (p[0] == ' ') p++, len--;
        s->first = 0;
    }
    /* pending (at most 3 bytes) + the piece, processed in bounded chunks */
    char chunk[sizeof s->pending + 256];
    int pos = 0;
    do {
        size_t m = (size_t)s->n_pending;
        memcpy(chunk, s->pending, m);
        int take = len - pos < 256 ? len - pos : 256;
        memcpy(chunk + m, p + pos, (size_t)take);
        pos += take;
        size_t keep = stream_emit_valid(chunk, m + (size_t)take, out, cap, &n);
        memcpy(s->pending, chunk + m + (size_t)take - keep, keep);
        s->n_pending = (int)keep;
    } while (pos < len);
    if (piece != small) free(piece);
    out[n] = 0;
    return n;
}

int tokenizer_stream_flush(tokenizer_stream *s, char *out, int cap)
{
    int n = 0;
    if (cap <= 0) return 0;
    if (s->n_pending) stream_put(out, cap, &n, "\xEF\xBF\xBD", 3);
    s->n_pending = 0;
    out[n] = 0;
    return n;
}
