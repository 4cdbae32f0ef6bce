/*
 * fuzz_prompt - prompt templates and fitting a diff into a budget
 * (bot/prompt.c, with the diff bookkeeping of bot/diff.c).
 *
 * Input: an option byte, the template text (a user's --prompt file), a
 * title, then NUL-separated (path, patch) pairs as the PR files API would
 * give them, and a context size. Token counting is a stand-in (a token per
 * 3 bytes). Checked: prompt_build succeeds or fails with one line; a prompt
 * that was built fits the budget it reports, and a file cut by the size
 * caps to nothing but hunk headers is not listed as shown.
 */
#include "fuzz.h" /* first: it defines _GNU_SOURCE */

#include "../../bot/prompt.h"

static int count(void *user, const char *text, size_t len)
{
    (void)user, (void)text;
    return (int)(len / 3 + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input in = {data, size};
    unsigned opts = fuzz_take_byte(&in);
    char *text = fuzz_take_string(&in, NULL), *title = fuzz_take_string(&in, NULL);
    prompt_template t;
    FUZZ_CHECK(prompt_template_parse("fuzz", text, &t) == 0, "parse failed");
    diff_options dopt = {.max_file_bytes = 64 + (opts & 0x70) * 64, .max_total_bytes = 4096};
    diff_result d = {0};
    while (in.n > 4 && d.n_files < 16) {
        char *path = fuzz_take_string(&in, NULL), *patch = fuzz_take_string(&in, NULL);
        FUZZ_CHECK(diff_result_add_file(&d, path, NULL, DIFF_MODIFIED, 1, 1, patch, &dopt) == 0, "add_file");
        free(path);
        free(patch);
    }
    FUZZ_CHECK(diff_result_apply_filters(&d, &dopt) == 0, "filters");
    prompt_var vars[] = {{"title", title}, {"repo", "o/r"}, {"body", text}};
    prompt_budget b = {.n_ctx = 64 + (int)(fuzz_take_u32(&in) % 8192), .max_tokens = 1 + (int)(opts & 15) * 16,
                       .count = count};
    prompt_result r;
    char err[512] = "";
    if (prompt_build(&t, vars, 3, &d, &b, &r, err, sizeof err) == 0) {
        FUZZ_CHECK(r.formatted && r.user_msg, "no prompt");
        FUZZ_CHECK(r.prompt_tokens <= r.token_budget || r.n_shown == 0, "%d tokens over the budget of %d",
                   r.prompt_tokens, r.token_budget);
        FUZZ_CHECK(r.max_tokens > 0 && r.max_tokens <= b.n_ctx / 2, "max_tokens %d", r.max_tokens);
        for (size_t i = 0; i < d.n_files; i++)
            FUZZ_CHECK(!d.files[i].patch_truncated || d.files[i].skip_reason ||
                           diff_patch_has_content(d.files[i].patch, d.files[i].patch_len),
                       "file %zu cut to nothing but listed as shown", i);
        prompt_result_free(&r);
    } else {
        FUZZ_CHECK(err[0] && !strchr(err, '\n'), "error is not one line: %s", err);
    }
    char *s = prompt_substitute(text, vars, 3);
    FUZZ_CHECK(s, "substitute failed");
    free(s);
    diff_result_free(&d);
    prompt_template_free(&t);
    free(text);
    free(title);
    return 0;
}
