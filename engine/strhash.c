/*
 * strhash.c - SipHash-1-3 (Aumasson and Bernstein's keyed hash, with one
 * compression and three finalisation rounds) under a per-process random
 * key. See strhash.h for why the engine's tables use a keyed hash.
 */
#include "strhash.h"

#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static uint64_t process_key[2];
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void make_key(void)
{
    if (getrandom(process_key, sizeof process_key, GRND_NONBLOCK) == (ssize_t)sizeof process_key) return;
    /* no entropy yet (early boot): the clock and the address space layout,
     * which still differ from one run to the next */
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    process_key[0] = ((uint64_t)t.tv_sec << 32) ^ (uint64_t)t.tv_nsec ^ (uint64_t)(uintptr_t)&t;
    process_key[1] = (uint64_t)(uintptr_t)&process_key ^ ((uint64_t)(uintptr_t)&make_key << 17);
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void sipround(strhash_state *s)
{
    s->v0 += s->v1;
    s->v1 = ROTL(s->v1, 13);
    s->v1 ^= s->v0;
    s->v0 = ROTL(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = ROTL(s->v3, 16);
    s->v3 ^= s->v2;
    s->v0 += s->v3;
    s->v3 = ROTL(s->v3, 21);
    s->v3 ^= s->v0;
    s->v2 += s->v1;
    s->v1 = ROTL(s->v1, 17);
    s->v1 ^= s->v2;
    s->v2 = ROTL(s->v2, 32);
}

static void compress(strhash_state *s, uint64_t m)
{
    s->v3 ^= m;
    sipround(s);
    s->v0 ^= m;
}

static void init_keyed(strhash_state *s, uint64_t k0, uint64_t k1)
{
    s->v0 = 0x736f6d6570736575ull ^ k0;
    s->v1 = 0x646f72616e646f6dull ^ k1;
    s->v2 = 0x6c7967656e657261ull ^ k0;
    s->v3 = 0x7465646279746573ull ^ k1;
    s->tail = 0;
    s->len = 0;
}

void strhash_init(strhash_state *s)
{
    pthread_once(&key_once, make_key);
    init_keyed(s, process_key[0], process_key[1]);
}

void strhash_update(strhash_state *s, const void *data, size_t n)
{
    const unsigned char *p = data;
    size_t have = s->len & 7;
    s->len += n;
    while (n && have) { /* complete the pending word */
        s->tail |= (uint64_t)*p++ << (8 * have);
        n--;
        if (++have == 8) {
            compress(s, s->tail);
            s->tail = 0;
            have = 0;
        }
    }
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t m = 0;
        for (int i = 0; i < 8; i++) m |= (uint64_t)p[i] << (8 * i);
        compress(s, m);
    }
    for (size_t i = 0; i < n; i++) s->tail |= (uint64_t)p[i] << (8 * i);
}

uint64_t strhash_final(const strhash_state *in)
{
    strhash_state s = *in;
    uint64_t b = ((uint64_t)s.len << 56) | s.tail;
    compress(&s, b);
    s.v2 ^= 0xff;
    for (int i = 0; i < 3; i++) sipround(&s);
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

uint64_t strhash(const void *data, size_t n)
{
    strhash_state s;
    strhash_init(&s);
    strhash_update(&s, data, n);
    return strhash_final(&s);
}

uint64_t strhash_keyed(uint64_t k0, uint64_t k1, const void *data, size_t n)
{
    strhash_state s;
    init_keyed(&s, k0, k1);
    strhash_update(&s, data, n);
    return strhash_final(&s);
}
