/*
 * fuzz_gguf - loading a model from untrusted bytes (engine/gguf.c,
 * engine/tokenizer.c, engine/model.c, engine/engine.c, engine/chat.c).
 *
 * Input: a GGUF file. It is opened and validated, every metadata key and
 * tensor is read back, and when it is a model the engine can load it is
 * loaded (one thread, 16 positions of context), asked to format a chat and
 * to generate two tokens greedily. Kernels are the scalar ones (engine_set_isa):
 * the SIMD kernels are tested against them elsewhere, and the fuzz build
 * does not instrument them. Checked: what gguf_open accepts has every tensor
 * inside the file and no two tensors share bytes; a loaded model generates
 * ids inside its vocabulary.
 */
#include "fuzz.h" /* first: it defines _GNU_SOURCE */

#include "../../engine/engine.h"
#include "../../engine/gguf.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char err[256];
    FUZZ_CHECK(engine_set_isa("scalar", err, sizeof err) == 0 && strcmp(engine_isa(), "scalar") == 0,
               "scalar kernels: %s", err);
    return 0;
}

static int no_output(int32_t id, const char *text, void *user)
{
    (void)id, (void)text, (void)user;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], err[512];
    int fd = fuzz_file(data, size, path, sizeof path);
    if (fd < 0) return 0;
    gguf_file *f;
    if (gguf_open(&f, path, err, sizeof err) == 0) {
        for (uint64_t i = 0; i < f->n_kv; i++) {
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)(f->kv[i].key.len < 255 ? f->kv[i].key.len : 255), f->kv[i].key.ptr);
            uint32_t u;
            int64_t v;
            float x;
            gguf_str s;
            (void)gguf_get_u32(f, key, &u), (void)gguf_get_i64(f, key, &v), (void)gguf_get_f32(f, key, &x);
            (void)gguf_get_str(f, key, &s);
        }
        for (uint64_t i = 0; i < f->n_tensors; i++) {
            const gguf_tensor *t = &f->tensors[i];
            const uint8_t *p = t->data;
            FUZZ_CHECK(p >= f->map && p + t->nbytes <= f->map + f->size, "tensor %llu outside the file",
                       (unsigned long long)i);
            for (uint64_t j = 0; j < i && f->n_tensors < 4096; j++) {
                const gguf_tensor *o = &f->tensors[j];
                const uint8_t *q = o->data;
                FUZZ_CHECK(p + t->nbytes <= q || q + o->nbytes <= p, "tensors %llu and %llu overlap",
                           (unsigned long long)i, (unsigned long long)j);
            }
        }
        gguf_close(f);
    } else {
        FUZZ_CHECK(err[0] && !strchr(err, '\n'), "error is not one line: %s", err);
    }

    engine *e;
    engine_params params = {.n_threads = 1, .n_ctx = 16, .n_batch = 8};
    if (engine_open(&e, path, &params, err, sizeof err) == 0) {
        const engine_info *info = engine_get_info(e);
        engine_chat_msg msgs[] = {{"system", "s"}, {"user", "hi"}};
        char *chat = NULL;
        if (engine_chat_format(e, msgs, 2, 1, &chat, err, sizeof err) == 0) free(chat);
        int32_t ids[16];
        int n = engine_tokenize(e, "hi there", 8, info->add_bos, 1, ids, 16);
        engine_session *s;
        if (n > 0 && n <= 8 && engine_session_new(&s, e, 0, err, sizeof err) == 0) {
            engine_sampling sp;
            engine_sampling_defaults(&sp);
            sp.temperature = 0;
            sp.max_tokens = 2;
            int32_t out[2] = {0, 0};
            engine_stats stats;
            if (engine_generate(s, ids, n, &sp, no_output, NULL, out, 2, &stats, err, sizeof err) == 0)
                for (int i = 0; i < stats.generated_tokens && i < 2; i++)
                    FUZZ_CHECK(out[i] >= 0 && out[i] < info->n_vocab, "id %d", out[i]);
            engine_session_free(s);
        }
        engine_close(e);
    } else {
        FUZZ_CHECK(err[0] && !strchr(err, '\n'), "error is not one line: %s", err);
    }
    close(fd);
    return 0;
}
