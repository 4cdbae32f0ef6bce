/*
 * fuzz_glob - glob and .gitattributes matching (bot/diff.c).
 *
 * Input: an option byte, then NUL-separated glob, path and .gitattributes
 * text. diff_glob_match is compared with a memoised reference matcher of the
 * same semantics written here (backtracking, but each (glob, path) position
 * pair is decided once), and diff_attr_check runs the attributes parser and
 * matcher on the path. Both must finish in time for any input (the matchers
 * are O(pattern x path)); libFuzzer's -timeout catches a regression.
 */
#include "fuzz.h" /* first: it defines _GNU_SOURCE */

#include "../../bot/diff.h"

typedef struct {
    const char *p, *s;
    size_t np, ns;
    signed char *memo; /* (np + 1) x (ns + 1): -1 unknown, 0, 1 */
} ref_matcher;

/* The bracket at p[i] ('[') against c: 1/0, and *next past ']'; -1 when malformed. */
static int ref_bracket(const ref_matcher *m, size_t i, unsigned char c, size_t *next)
{
    size_t j = i + 1;
    int negate = 0, hit = 0;
    if (j < m->np && (m->p[j] == '!' || m->p[j] == '^')) negate = 1, j++;
    size_t start = j;
    while (j < m->np && (m->p[j] != ']' || j == start)) {
        unsigned char lo = (unsigned char)m->p[j], hi = lo;
        if (j + 2 < m->np && m->p[j + 1] == '-' && m->p[j + 2] != ']') hi = (unsigned char)m->p[j + 2], j += 2;
        if (c >= lo && c <= hi) hit = 1;
        j++;
    }
    if (j >= m->np) return -1;
    *next = j + 1;
    return hit != negate;
}

static int ref_match(ref_matcher *m, size_t i, size_t k)
{
    signed char *slot = &m->memo[i * (m->ns + 1) + k];
    if (*slot >= 0) return *slot;
    int r;
    if (i == m->np) {
        r = k == m->ns;
    } else if (m->p[i] == '*' && i + 1 < m->np && m->p[i + 1] == '*') {
        size_t j = i;
        while (j < m->np && m->p[j] == '*') j++;
        r = 0;
        if (j < m->np && m->p[j] == '/') { /* nothing, or anything ending in '/' */
            r = ref_match(m, j + 1, k);
            for (size_t q = k; q < m->ns && !r; q++)
                if (m->s[q] == '/') r = ref_match(m, j + 1, q + 1);
        } else {
            for (size_t q = k; q <= m->ns && !r; q++) r = ref_match(m, j, q);
        }
    } else if (m->p[i] == '*') {
        r = 0;
        for (size_t q = k; !r; q++) {
            r = ref_match(m, i + 1, q);
            if (q == m->ns || m->s[q] == '/') break;
        }
    } else if (k == m->ns) {
        r = 0;
    } else if (m->p[i] == '?') {
        r = m->s[k] != '/' && ref_match(m, i + 1, k + 1);
    } else if (m->p[i] == '[') {
        size_t next;
        int b = ref_bracket(m, i, (unsigned char)m->s[k], &next);
        if (b >= 0) r = b && m->s[k] != '/' && ref_match(m, next, k + 1);
        else r = m->s[k] == '[' && ref_match(m, i + 1, k + 1);
    } else {
        size_t j = m->p[i] == '\\' && i + 1 < m->np ? i + 1 : i;
        r = m->p[j] == m->s[k] && ref_match(m, j + 1, k + 1);
    }
    *slot = (signed char)r;
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input in = {data, size};
    unsigned opts = fuzz_take_byte(&in);
    size_t glob_len, path_len, attrs_len;
    char *glob = fuzz_take_string(&in, &glob_len), *path = fuzz_take_string(&in, &path_len);
    char *attrs = fuzz_take_string(&in, &attrs_len);
    int got = diff_glob_match(glob, path);
    /* a glob with a '/' inside, not at either end, is matched against the whole path */
    if (glob_len && glob_len <= 256 && path_len <= 256 && glob[0] != '/' && glob[0] != '.' &&
        glob[glob_len - 1] != '/' && strchr(glob, '/')) {
        ref_matcher m = {glob, path, glob_len, path_len, malloc((glob_len + 1) * (path_len + 1))};
        FUZZ_CHECK(m.memo, "out of memory");
        memset(m.memo, -1, (glob_len + 1) * (path_len + 1));
        int want = ref_match(&m, 0, 0);
        free(m.memo);
        FUZZ_CHECK(got == want, "glob [%s] path [%s]: %d, the reference says %d", glob, path, got, want);
    }
    const char *reason = diff_attr_check(attrs, attrs_len, path);
    FUZZ_CHECK(!reason || strstr(reason, ".gitattributes"), "reason %s", reason);
    if (opts & 1) (void)diff_default_skip_reason(path);
    free(glob);
    free(path);
    free(attrs);
    return 0;
}
