/*
 * fuzz_sampler - the sampler on arbitrary logits (engine/sampler.c).
 *
 * Input: 16 bytes of parameters (temperature, top-k, top-p, min-p,
 * repetition penalty and window, seed, ids seen before), then the logits as
 * raw floats, NaN and infinities included: a model file can make a forward
 * pass produce anything. Checked: the id is in the vocabulary, and the same
 * seed on the same logits gives the same id.
 */
#include "fuzz.h" /* first: it defines _GNU_SOURCE */

#include "../../engine/sampler.h"

static float take_float(fuzz_input *in)
{
    uint32_t u = fuzz_take_u32(in);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input in = {data, size};
    engine_sampling p;
    engine_sampling_defaults(&p);
    unsigned opts = fuzz_take_byte(&in);
    p.temperature = opts & 1 ? 0.0f : take_float(&in);
    p.top_k = (int)(fuzz_take_u32(&in) % 100000) - 10;
    p.top_p = take_float(&in);
    p.min_p = take_float(&in);
    p.repeat_penalty = opts & 2 ? take_float(&in) : 1.0f;
    p.repeat_last_n = (int)(fuzz_take_byte(&in)) - 8;
    p.seed = fuzz_take_u32(&in);
    int n_vocab = 1 + (int)(in.n / 4 > 4096 ? 4096 : in.n / 4);
    float *logits = malloc((size_t)n_vocab * sizeof *logits), *copy = malloc((size_t)n_vocab * sizeof *copy);
    FUZZ_CHECK(logits && copy, "out of memory");
    for (int i = 0; i < n_vocab; i++) logits[i] = take_float(&in);
    memcpy(copy, logits, (size_t)n_vocab * sizeof *copy);
    int32_t ids[2];
    for (int round = 0; round < 2; round++) {
        sampler *s = sampler_new(&p, n_vocab);
        FUZZ_CHECK(s, "sampler_new failed");
        for (unsigned k = 0; k < (opts >> 4); k++) sampler_accept(s, (int32_t)((k * 7919u + opts) % (unsigned)n_vocab));
        memcpy(logits, copy, (size_t)n_vocab * sizeof *copy);
        ids[round] = sampler_sample(s, logits);
        FUZZ_CHECK(ids[round] >= 0 && ids[round] < n_vocab, "id %d of %d", ids[round], n_vocab);
        sampler_free(s);
    }
    FUZZ_CHECK(ids[0] == ids[1], "same seed, different ids: %d, %d", ids[0], ids[1]);
    free(logits);
    free(copy);
    return 0;
}
