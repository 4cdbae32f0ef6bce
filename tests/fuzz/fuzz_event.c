/*
 * fuzz_event - the GitHub Actions event JSON (bot/event.c).
 *
 * Input: an option byte (which event: pull_request, pull_request_target,
 * workflow_dispatch), then the event file's bytes. Checked: a pull request
 * event that parses has a positive number and hex SHAs; title and body are
 * never NULL after a parse.
 */
#include "fuzz.h" /* first: it defines _GNU_SOURCE */

#include "../../bot/event.h"

static const char *const events[] = {"pull_request", "pull_request_target", "workflow_dispatch"};

static int is_hex(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input in = {data, size};
    const char *name = events[fuzz_take_byte(&in) % 3];
    char path[64], err[512];
    int fd = fuzz_file(in.p, in.n, path, sizeof path);
    if (fd < 0) return 0;
    event_context ctx;
    memset(&ctx, 0, sizeof ctx);
    snprintf(ctx.event_name, sizeof ctx.event_name, "%s", name);
    int rc = event_parse_file(&ctx, name, path, err, sizeof err);
    if (rc == 0 && ctx.kind != EVENT_WORKFLOW_DISPATCH) {
        FUZZ_CHECK(ctx.pr_number > 0 && is_hex(ctx.base_sha) && is_hex(ctx.head_sha), "PR %ld, %s..%s",
                   ctx.pr_number, ctx.base_sha, ctx.head_sha);
        FUZZ_CHECK(ctx.title && ctx.body, "NULL title or body");
    }
    FUZZ_CHECK(rc == 0 || (err[0] && !strchr(err, '\n')), "error is not one line: %s", err);
    event_context_free(&ctx);
    close(fd);
    return 0;
}
