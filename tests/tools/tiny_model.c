/*
 * tiny_model - writes a tiny GGUF model whose greedy output is one fixed text.
 *
 *   tiny_model --out PATH --text TEXT [--n-ctx N] [--q8_0]
 *
 * TEXT becomes one token of the vocabulary (spaces written as SentencePiece's
 * "▁"), and greedy decoding repeats that token until max_tokens: the script
 * tests use it to make `prbot review` stream and post an exact, hostile text
 * (see tiny_model.h for how the weights do that). --q8_0 stores the matrices
 * as Q8_0 (a model without any float matrix; the GGUF fuzz corpus has one).
 */
#include "tiny_model.h"

int main(int argc, char **argv)
{
    const char *out = NULL, *text = NULL;
    int n_ctx = 4096, q8_0 = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--q8_0")) q8_0 = 1;
        else if (i + 1 >= argc) break;
        else if (!strcmp(argv[i], "--out")) out = argv[++i];
        else if (!strcmp(argv[i], "--text")) text = argv[++i];
        else if (!strcmp(argv[i], "--n-ctx")) n_ctx = atoi(argv[++i]);
    }
    if (!out || !text || n_ctx <= 0) {
        fprintf(stderr, "usage: tiny_model --out PATH --text TEXT [--n-ctx N] [--q8_0]\n");
        return 2;
    }
    size_t n = strlen(text);
    char *spm = malloc(3 * n + 1), *p = spm;
    if (!spm) return 1;
    for (size_t i = 0; i < n; i++) {
        if (text[i] == ' ') memcpy(p, "\xE2\x96\x81", 3), p += 3;
        else *p++ = text[i];
    }
    *p = 0;
    const char *tokens[] = {spm};
    char err[256];
    int rc = tiny_model_write_typed(out, tokens, 1, TINY_MODEL_FIRST_TOKEN, n_ctx, q8_0 ? QT_Q8_0 : QT_F32, err,
                                    sizeof err);
    free(spm);
    if (rc) fprintf(stderr, "tiny_model: %s\n", err);
    return rc ? 1 : 0;
}
