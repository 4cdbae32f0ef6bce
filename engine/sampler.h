/*
 * sampler.h - turn a row of logits into the next token id.
 *
 * Greedy when temperature is 0; otherwise repetition penalty, then top-k,
 * temperature, top-p and min-p filtering, then a draw from a seeded
 * xorshift/splitmix generator, so the same seed gives the same tokens.
 */
#ifndef PRBOT_SAMPLER_H
#define PRBOT_SAMPLER_H

#include <stdint.h>

#include "engine.h"

typedef struct sampler sampler;

sampler *sampler_new(const engine_sampling *params, int n_vocab);
void sampler_free(sampler *s);
/* Remembers an id for the repetition penalty (call for prompt and generated tokens). */
void sampler_accept(sampler *s, int32_t id);
/* Picks the next id. `logits` may be modified. */
int32_t sampler_sample(sampler *s, float *logits);

#endif
