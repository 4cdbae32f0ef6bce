/*
 * test_diff.c - bot/diff.c against real git repositories.
 *
 * Each test builds a repository in a fresh mkdtemp directory with the git
 * CLI (an independent implementation of what libgit2 reads), then checks
 * the files, statuses, counts, hunks and skip reasons diff_collect reports.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../bot/diff.h"
#include "../bot/findings.h"
#include "test.h"

static char repo_dir[256];

/* Runs a shell command inside repo_dir with a fixed identity; returns its status. */
static int sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(cmd, sizeof cmd,
                     "cd '%s' && export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@e GIT_COMMITTER_NAME=t "
                     "GIT_COMMITTER_EMAIL=t@e GIT_CONFIG_NOSYSTEM=1 HOME='%s' && ( ",
                     repo_dir, repo_dir);
    vsnprintf(cmd + n, sizeof cmd - (size_t)n - 32, fmt, ap);
    va_end(ap);
    strcat(cmd, " ) >/dev/null 2>&1");
    return system(cmd);
}

static void new_repo(void)
{
    snprintf(repo_dir, sizeof repo_dir, "/tmp/prbot-test-diff-XXXXXX");
    REQUIRE(mkdtemp(repo_dir) != NULL, "mkdtemp failed");
    REQUIRE(sh("git init -q -b main . && git config commit.gpgsign false") == 0, "git init failed");
}

static void remove_repo(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s-clone'", repo_dir, repo_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", repo_dir);
}

static const diff_file *find_file(const diff_result *r, const char *path)
{
    for (size_t i = 0; i < r->n_files; i++)
        if (!strcmp(r->files[i].path, path)) return &r->files[i];
    return NULL;
}

static void test_statuses_and_hunks(void)
{
    new_repo();
    REQUIRE(sh("printf 'one\\ntwo\\nthree\\n' > a.c && printf 'gone\\n' > b.c && "
               "seq 1 50 | sed 's/^/line /' > old.c && git add . && git commit -qm base") == 0,
            "base commit");
    REQUIRE(sh("git checkout -qb feature && printf 'one\\nTWO\\nthree\\nfour\\n' > a.c && git rm -q b.c && "
               "printf 'fresh\\n' > new.c && mkdir moved && git mv old.c moved/renamed.c && "
               "echo 'line 51' >> moved/renamed.c && git add -A && git commit -qm change") == 0,
            "feature commit");
    /* a later commit on main must not show up: we diff from the merge base */
    REQUIRE(sh("git checkout -q main && echo main-only > later.c && git add . && git commit -qm later") == 0,
            "main commit");
    diff_result r;
    char err[512] = "";
    int rc = diff_collect(repo_dir, "main", "feature", NULL, &r, err, sizeof err);
    REQUIRE(rc == 0, "diff_collect: %s", err);
    EXPECT(r.n_files == 4, "expected 4 files, got %zu", r.n_files);
    EXPECT(find_file(&r, "later.c") == NULL, "a main-only change leaked into the diff");
    const diff_file *a = find_file(&r, "a.c"), *b = find_file(&r, "b.c"), *n = find_file(&r, "new.c"),
                    *m = find_file(&r, "moved/renamed.c");
    REQUIRE(a && b && n && m, "missing a file");
    EXPECT(a->status == DIFF_MODIFIED && a->additions == 2 && a->deletions == 1, "a.c: %s +%d -%d",
           diff_status_name(a->status), a->additions, a->deletions);
    EXPECT(a->patch && !strncmp(a->patch, "@@ -1,3 +1,4 @@", 15), "a.c hunk header: %.40s", a->patch);
    EXPECT(a->patch && strstr(a->patch, "\n-two\n+TWO\n") && strstr(a->patch, "+four\n"), "a.c hunk body");
    EXPECT(b->status == DIFF_DELETED && b->deletions == 1 && b->additions == 0, "b.c deleted");
    EXPECT(n->status == DIFF_ADDED && n->additions == 1 && n->patch && strstr(n->patch, "+fresh"), "new.c added");
    EXPECT(m->status == DIFF_RENAMED && m->old_path && !strcmp(m->old_path, "old.c"), "rename not detected");
    EXPECT(m->additions == 1 && m->deletions == 0, "rename counts +%d -%d", m->additions, m->deletions);
    for (size_t i = 0; i < r.n_files; i++) EXPECT(r.files[i].skip_reason == NULL, "%s skipped", r.files[i].path);
    EXPECT(strlen(r.head_sha) == 40 && strlen(r.merge_base_sha) == 40 && strcmp(r.base_sha, r.merge_base_sha),
           "merge base should differ from the advanced base");
    diff_result_free(&r);
    remove_repo();
}

/* The attributes are the base's (see test_head_attributes_ignored). */
static void test_default_skips(void)
{
    new_repo();
    REQUIRE(sh("echo x > keep.c && mkdir docs && "
               "printf 'gen/** linguist-generated\\ndocs/big.txt -diff\\nthird.c linguist-vendored=true\\n' "
               "> .gitattributes && printf '*.dat binary\\n' > docs/.gitattributes && "
               "git add . && git commit -qm base") == 0,
            "base");
    REQUIRE(sh("git checkout -qb pr && echo y >> keep.c && printf 'a\\000b\\001\\002' > logo.bin && "
               "echo '{}' > package-lock.json && echo x > yarn.lock && "
               "mkdir -p sub vendor/lib gen docs && echo x > sub/Cargo.lock && echo 'int v;' > vendor/lib/v.c && "
               "echo 'a()' > app.min.js && echo 'int g;' > gen/out.c && echo text > docs/big.txt && "
               "echo 'int t;' > third.c && echo text > docs/table.dat && echo text > table.dat && "
               "git add -A && git commit -qm pr") == 0,
            "pr commit");
    diff_result r;
    char err[512] = "";
    REQUIRE(diff_collect(repo_dir, "main", "pr", NULL, &r, err, sizeof err) == 0, "diff_collect: %s", err);
    struct {
        const char *path, *reason_part;
    } want[] = {
        {"keep.c", NULL},
        {"table.dat", NULL}, /* docs/.gitattributes does not reach the root */
        {"docs/table.dat", "-diff"},
        {"logo.bin", "binary"},
        {"package-lock.json", "lock file"},
        {"yarn.lock", "lock file"},
        {"sub/Cargo.lock", "lock file"},
        {"vendor/lib/v.c", "vendored"},
        {"app.min.js", "minified"},
        {"gen/out.c", "linguist-generated"},
        {"docs/big.txt", "-diff"},
        {"third.c", "linguist-vendored"},
    };
    EXPECT(r.n_files == sizeof want / sizeof want[0], "expected %zu files, got %zu", sizeof want / sizeof want[0],
           r.n_files);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const diff_file *f = find_file(&r, want[i].path);
        EXPECT(f != NULL, "%s missing", want[i].path);
        if (!f) continue;
        if (!want[i].reason_part) {
            EXPECT(!f->skip_reason && f->patch, "%s should be kept (reason %s)", f->path, f->skip_reason);
        } else {
            EXPECT(f->skip_reason && strstr(f->skip_reason, want[i].reason_part), "%s: reason '%s', want '%s'",
                   f->path, f->skip_reason ? f->skip_reason : "(none)", want[i].reason_part);
            EXPECT(f->patch == NULL, "%s: skipped file kept its patch", f->path);
        }
    }
    diff_result_free(&r);
    remove_repo();
}

static void test_include_exclude(void)
{
    new_repo();
    REQUIRE(sh("echo x > README.md && git add . && git commit -qm base") == 0, "base");
    REQUIRE(sh("git checkout -qb pr && mkdir -p src/deep/er tests docs && echo 1 > src/a.c && "
               "echo 2 > src/deep/er/b.c && echo 3 > tests/t.c && echo 4 > docs/x.md && echo 5 >> README.md && "
               "git add -A && git commit -qm pr") == 0,
            "pr");
    const char *include[] = {"src/**", "*.md"};
    const char *exclude[] = {"docs/"};
    diff_options opt = {.include = include, .n_include = 2, .exclude = exclude, .n_exclude = 1};
    diff_result r;
    char err[512] = "";
    REQUIRE(diff_collect(repo_dir, "main", "pr", &opt, &r, err, sizeof err) == 0, "diff_collect: %s", err);
    const diff_file *a = find_file(&r, "src/a.c"), *b = find_file(&r, "src/deep/er/b.c"),
                    *t = find_file(&r, "tests/t.c"), *d = find_file(&r, "docs/x.md"), *m = find_file(&r, "README.md");
    REQUIRE(a && b && t && d && m, "missing file");
    EXPECT(!a->skip_reason && !b->skip_reason && !m->skip_reason, "included files skipped");
    EXPECT(t->skip_reason && strstr(t->skip_reason, "--include"), "tests/t.c: %s", t->skip_reason);
    EXPECT(d->skip_reason && !strcmp(d->skip_reason, "excluded by --exclude docs/"), "docs/x.md: %s",
           d->skip_reason);
    diff_result_free(&r);
    remove_repo();
}

/* The PR's own .gitattributes (head side) decides nothing: it cannot hide
 * its files from the review, and removing the base's does not unhide them. */
static void test_head_attributes_ignored(void)
{
    new_repo();
    REQUIRE(sh("mkdir gen && echo 'int g;' > gen/out.c && printf 'gen/** linguist-generated\\n' > .gitattributes && "
               "git add . && git commit -qm base") == 0,
            "base");
    REQUIRE(sh("git checkout -qb pr && echo 'int h;' > hidden.c && echo 'int g2;' >> gen/out.c && "
               "printf '*.c linguist-generated\\n*.c -diff\\n' > .gitattributes && mkdir sub && "
               "printf '* linguist-vendored\\n' > sub/.gitattributes && echo 'int s;' > sub/s.c && "
               "mkdir -p .git/info && git add -A && git commit -qm pr && git rm -q .gitattributes && "
               "git commit -qm 'drop attributes'") == 0,
            "pr commit");
    diff_result r;
    char err[512] = "";
    REQUIRE(diff_collect(repo_dir, "main", "pr", NULL, &r, err, sizeof err) == 0, "diff_collect: %s", err);
    const diff_file *h = find_file(&r, "hidden.c"), *s = find_file(&r, "sub/s.c"), *g = find_file(&r, "gen/out.c");
    REQUIRE(h && s && g, "missing a file");
    EXPECT(!h->skip_reason && h->patch, "hidden.c skipped by the head's attributes: %s", h->skip_reason);
    EXPECT(!s->skip_reason && s->patch, "sub/s.c skipped by the head's attributes: %s", s->skip_reason);
    EXPECT(g->skip_reason && strstr(g->skip_reason, "linguist-generated"), "gen/out.c: %s", g->skip_reason);
    diff_result_free(&r);
    /* $GIT_DIR/info/attributes is local, so it counts (and overrides) */
    REQUIRE(sh("printf 'hidden.c linguist-generated\\n' > .git/info/attributes") == 0, "info/attributes");
    REQUIRE(diff_collect(repo_dir, "main", "pr", NULL, &r, err, sizeof err) == 0, "diff_collect: %s", err);
    h = find_file(&r, "hidden.c");
    EXPECT(h && h->skip_reason && strstr(h->skip_reason, "linguist-generated"), "info/attributes ignored");
    diff_result_free(&r);
    remove_repo();
}

/* A pull request whose head adds a .gitattributes pattern that makes a
 * backtracking matcher (libgit2's, reading the head) take exponential time
 * on a deep path, and a file whose path is 64 KB long: both finish at once.
 * The long path is skipped by name, the deep one reviewed. */
static void test_hostile_attributes_and_long_path(void)
{
    new_repo();
    REQUIRE(sh("echo x > keep.c && git add . && git commit -qm base") == 0, "base");
    char pattern[256] = "", long_comp[256];
    for (int i = 0; i < 24; i++) strcat(pattern, "**/*/");
    strcat(pattern, "b");
    memset(long_comp, 'a', 255);
    long_comp[255] = 0;
    /* nested trees built bottom up with plumbing (no checkout could hold them) */
    REQUIRE(sh("b=$(echo 'int x;' | git hash-object -w --stdin) && "
               "a=$(printf '%%s linguist-generated\\n' '%s' | git hash-object -w --stdin) && "
               "deep=$(printf '100644 blob %%s\\tf.c\\n' $b | git mktree) && long=$deep && "
               "for i in $(seq 1 39); do deep=$(printf '040000 tree %%s\\ta\\n' $deep | git mktree); done && "
               "for i in $(seq 1 249); do long=$(printf '040000 tree %%s\\t%s\\n' $long | git mktree); done && "
               "root=$( (git ls-tree HEAD; printf '100644 blob %%s\\t.gitattributes\\n040000 tree %%s\\ta\\n"
               "040000 tree %%s\\t%s\\n' $a $deep $long) | git mktree) && "
               "git update-ref refs/heads/pr $(git commit-tree $root -p HEAD -m hostile)",
               pattern, long_comp, long_comp) == 0,
            "hostile commit");
    test_watchdog("test_hostile_attributes_and_long_path", 120);
    diff_result r;
    char err[512] = "";
    REQUIRE(diff_collect(repo_dir, "main", "pr", NULL, &r, err, sizeof err) == 0, "diff_collect: %s", err);
    test_watchdog(NULL, 0);
    EXPECT(r.n_files == 3, "files %zu", r.n_files);
    const diff_file *deep = NULL, *longest = NULL;
    for (size_t i = 0; i < r.n_files; i++) {
        size_t n = strlen(r.files[i].path);
        if (n > 60000) longest = &r.files[i];
        else if (n > 40) deep = &r.files[i];
    }
    REQUIRE(deep && longest, "the deep and the long path are missing");
    EXPECT(strlen(longest->path) == 250 * 256 + 3, "long path of %zu bytes", strlen(longest->path));
    EXPECT(longest->skip_reason && strstr(longest->skip_reason, "path longer than"), "long path: %s",
           longest->skip_reason);
    EXPECT(!deep->skip_reason && deep->patch && strstr(deep->patch, "+int x;"), "deep path: %s", deep->skip_reason);
    diff_result_free(&r);
    remove_repo();
}

/* Every byte of a glob and of a path at the allowed maximum, in the shapes
 * that make a backtracking matcher exponential (a 98-byte one ran for
 * minutes): results as the definition says. */
static void test_glob_worst_case(void)
{
    static char glob[1025], path[4097];
    test_watchdog("test_glob_worst_case", 60);
    for (int i = 0; i < 512; i++) memcpy(glob + 2 * i, "*a", 2);
    memset(path, 'a', 4096);
    EXPECT(diff_glob_match(glob, path), "512 x '*a' matches 4096 a's");
    glob[1023] = 'b';
    EXPECT(!diff_glob_match(glob, path), "... but not when it must end in b");
    path[4095] = 'b';
    EXPECT(diff_glob_match(glob, path), "... which it does now");
    /* "**" + "/" chains over a path of one-byte components */
    for (int i = 0; i < 1020; i += 5) memcpy(glob + i, "**/a/", 5);
    memcpy(glob + 1020, "c", 2);
    for (int i = 0; i < 4096; i += 2) memcpy(path + i, "a/", 2);
    path[4094] = 'b', path[4095] = 0;
    EXPECT(!diff_glob_match(glob, path), "**/a/ chain, no c at the end");
    path[4094] = 'c';
    EXPECT(diff_glob_match(glob, path), "**/a/ chain, c at the end (204 a's needed, 2048 there)");
    /* brackets and stars over one long component */
    for (int i = 0; i < 1020; i += 4) memcpy(glob + i, "*[a]", 4);
    memcpy(glob + 1020, "?", 2);
    memset(path, 'a', 4096);
    path[4096] = 0;
    EXPECT(diff_glob_match(glob, path), "*[a] chain");
    path[100] = '/';
    EXPECT(diff_glob_match(glob, path), "a glob without '/' matches a component (3995 a's)");
    for (int i = 199; i < 4096; i += 200) path[i] = '/';
    EXPECT(!diff_glob_match(glob, path), "'*', '?' and [a] never match a '/' (components of 199 < 256)");
    test_watchdog(NULL, 0);
}

/* The largest .gitattributes read (64 KiB) made of the patterns that keep
 * the most NFA states alive and pass the literal prefilter, against the
 * longest path: the result as the definition says. */
static void test_attributes_worst_case(void)
{
    static char attrs[65536], path[4097];
    size_t n = 0;
    while (n + 1100 < sizeof attrs) { /* "*a*a...*a* binary": 1000-byte patterns */
        for (int i = 0; i < 500; i++) attrs[n++] = '*', attrs[n++] = 'a';
        memcpy(attrs + n, "* linguist-vendored\n", 20), n += 20;
    }
    memcpy(attrs + n, "*b* binary\n", 11), n += 11;
    memset(path, 'a', 4096);
    path[4096] = 0;
    test_watchdog("test_attributes_worst_case", 60);
    const char *r = diff_attr_check(attrs, n, path);
    EXPECT(r && strstr(r, "vendored"), "every '*a*...' line matches 4096 a's: %s", r ? r : "no reason");
    path[2000] = 'b';
    r = diff_attr_check(attrs, n, path);
    EXPECT(r && strstr(r, "vendored"), "both kinds of line match, and vendored is the reason given first: %s", r ? r : "none");
    memset(path, 'b', 4096);
    r = diff_attr_check(attrs, n, path);
    EXPECT(r && strstr(r, "-diff"), "only the binary line matches b's: %s", r ? r : "no reason");
    test_watchdog(NULL, 0);
}

static void test_glob_match(void)
{
    EXPECT(diff_glob_match("*.c", "a/b/c.c"), "*.c matches a base name at depth");
    EXPECT(!diff_glob_match("src/*.c", "src/x/y.c"), "* must not cross /");
    EXPECT(diff_glob_match("src/**/*.c", "src/y.c"), "**/ matches zero dirs");
    EXPECT(diff_glob_match("src/**/*.c", "src/x/z/y.c"), "**/ matches many dirs");
    EXPECT(diff_glob_match("**/test_*.py", "a/b/test_x.py"), "leading **");
    EXPECT(diff_glob_match("docs/", "docs/a/b.md") && diff_glob_match("docs/", "x/docs/a.md"), "dir/ at depth");
    EXPECT(!diff_glob_match("docs/", "mydocs/a.md"), "dir/ must match whole components");
    EXPECT(diff_glob_match("file[0-9].txt", "file7.txt") && !diff_glob_match("file[!0-9].txt", "file7.txt"),
           "brackets");
    EXPECT(diff_glob_match("/top.c", "top.c") && diff_glob_match("./top.c", "top.c"), "anchored");
    EXPECT(!diff_glob_match("*.c", "a.cc"), "suffix exact");
    EXPECT(diff_glob_match("a\\*b", "a*b") && !diff_glob_match("a\\*b", "axb"), "escaped star");
    EXPECT(diff_glob_match("[", "[") && diff_glob_match("a[b", "a[b"), "a lone [ is literal");
    EXPECT(diff_glob_match("**", "a/b/c") && diff_glob_match("a/**", "a/b/c") && !diff_glob_match("a/**", "b/c"),
           "globstar");
    EXPECT(diff_glob_match("a/**/b", "a/b") && diff_glob_match("a/**/b", "a/x/y/b") && !diff_glob_match("a/**/b", "a/xb"),
           "**/ takes whole components");
    EXPECT(diff_glob_match("[]]", "]") && diff_glob_match("[!a]", "b") && !diff_glob_match("[!a]", "/"),
           "bracket edge cases");
    EXPECT(diff_glob_match("ab*ba", "abba") && !diff_glob_match("ab*ba", "aba") && diff_glob_match("ab*ba", "abxba"),
           "literal ends must not overlap");
    EXPECT(diff_glob_match("a/b.c", "a/b.c") && !diff_glob_match("a/b.c", "a/b.cc") && !diff_glob_match("a/b.c", "a/b"),
           "a glob without wildcards is the path");
    EXPECT(!diff_glob_match("", "") && !diff_glob_match("", "a"), "an empty glob matches nothing");
}

/* 30000 changed lines in one file plus 60 more files: caps hold, truncation is recorded. */
static void test_huge_diff_capped(void)
{
    new_repo();
    REQUIRE(sh("echo x > base.txt && git add . && git commit -qm base") == 0, "base");
    REQUIRE(sh("git checkout -qb pr && seq 1 30000 | sed 's/$/ a line of generated-looking text/' > a_huge.c && "
               "for i in $(seq 1 60); do seq 1 200 > f$i.c; done && git add -A && git commit -qm pr") == 0,
            "pr");
    diff_options opt = {.max_file_bytes = 64 * 1024, .max_total_bytes = 100 * 1024};
    diff_result r;
    char err[512] = "";
    REQUIRE(diff_collect(repo_dir, "main", "pr", &opt, &r, err, sizeof err) == 0, "diff_collect: %s", err);
    EXPECT(r.n_files == 61, "files %zu", r.n_files);
    const diff_file *h = find_file(&r, "a_huge.c");
    REQUIRE(h != NULL, "huge.c missing");
    EXPECT(h->additions == 30000, "additions counted in full: %d", h->additions);
    EXPECT(h->patch_truncated && h->patch_len <= 64 * 1024 && h->patch_len > 60 * 1024, "huge.c patch %zu bytes",
           h->patch_len);
    EXPECT(h->patch && h->patch[h->patch_len - 1] == '\n', "truncated at a line end");
    EXPECT(r.total_patch_bytes <= 100 * 1024, "total %zu over cap", r.total_patch_bytes);
    size_t not_loaded = 0, sum = 0;
    for (size_t i = 0; i < r.n_files; i++) {
        sum += r.files[i].patch_len;
        if (r.files[i].skip_reason && strstr(r.files[i].skip_reason, "size cap")) {
            not_loaded++;
            EXPECT(r.files[i].not_shown, "%s (%s) is marked not shown", r.files[i].path, r.files[i].skip_reason);
        }
    }
    EXPECT(sum == r.total_patch_bytes, "total bytes bookkeeping %zu vs %zu", sum, r.total_patch_bytes);
    EXPECT(not_loaded > 0 && r.total_truncated, "the total cap should leave some files unloaded");
    diff_result_free(&r);
    remove_repo();
}

/* A file whose first line alone is over the cap has nothing to show: it
 * must be listed as not shown, never as reviewed. */
static void test_capped_files_not_shown(void)
{
    new_repo();
    REQUIRE(sh("echo x > base.txt && git add . && git commit -qm base") == 0, "base");
    REQUIRE(sh("git checkout -qb pr && (seq 1 2000 | tr -d '\\n') > big.c && echo small > small.c && "
               "git add -A && git commit -qm pr") == 0,
            "pr");
    diff_options opt = {.max_file_bytes = 1024, .max_total_bytes = 1 << 20};
    diff_result r;
    char err[512] = "";
    REQUIRE(diff_collect(repo_dir, "main", "pr", &opt, &r, err, sizeof err) == 0, "diff_collect: %s", err);
    const diff_file *big = find_file(&r, "big.c"), *small = find_file(&r, "small.c");
    REQUIRE(big && small, "missing a file");
    EXPECT(big->patch_len == 0 && big->not_shown && big->skip_reason && strstr(big->skip_reason, "per-file"),
           "big.c: %zu bytes, not_shown %d, reason %s", big->patch_len, big->not_shown, big->skip_reason);
    EXPECT(!small->skip_reason && !small->not_shown && small->patch_len > 0, "small.c: %s", small->skip_reason);
    /* review.json lists it under "not_shown", not "skipped" */
    review_doc doc = {0};
    REQUIRE(review_doc_set_files(&doc, &r) == 0, "set_files");
    EXPECT(doc.n_not_shown == 1 && !strcmp(doc.not_shown[0].path, "big.c") && doc.n_skipped == 0 &&
               doc.n_reviewed == 1,
           "review.json: %zu not shown, %zu skipped, %zu reviewed", doc.n_not_shown, doc.n_skipped, doc.n_reviewed);
    review_doc_free(&doc);
    diff_result_free(&r);
    remove_repo();
}

static void test_shallow_clone_base_missing(void)
{
    new_repo();
    REQUIRE(sh("echo 1 > a && git add . && git commit -qm one && echo 2 > a && git commit -qam two && "
               "echo 3 > a && git commit -qam three") == 0,
            "commits");
    char base[64] = "";
    FILE *p;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "git -C '%s' rev-parse HEAD~2", repo_dir);
    REQUIRE((p = popen(cmd, "r")) != NULL, "popen");
    REQUIRE(fgets(base, sizeof base, p) != NULL, "rev-parse");
    pclose(p);
    base[strcspn(base, "\n")] = 0;
    REQUIRE(sh("git clone -q --depth 1 'file://%s' '%s-clone'", repo_dir, repo_dir) == 0, "shallow clone");
    char clone[300];
    snprintf(clone, sizeof clone, "%s-clone", repo_dir);
    diff_result r;
    char err[512] = "";
    int rc = diff_collect(clone, base, "HEAD", NULL, &r, err, sizeof err);
    EXPECT(rc == PRBOT_ENOTFOUND, "rc %d (%s)", rc, err);
    EXPECT(strstr(err, base) && strstr(err, "fetch-depth"), "message: %s", err);
    EXPECT(r.n_files == 0 && r.files == NULL, "no files on error");
    /* a head SHA missing from the checkout (actions/checkout fetched only the merge commit) */
    rc = diff_collect(clone, "HEAD", base, NULL, &r, err, sizeof err);
    EXPECT(rc == PRBOT_ENOTFOUND && strstr(err, "head commit"), "head missing: rc %d (%s)", rc, err);
    /* the full repository works with the same base */
    REQUIRE(diff_collect(repo_dir, base, "HEAD", NULL, &r, err, sizeof err) == 0, "full repo: %s", err);
    EXPECT(r.n_files == 1, "files %zu", r.n_files);
    diff_result_free(&r);
    /* not a repository at all */
    rc = diff_collect("/", "HEAD~1", "HEAD", NULL, &r, err, sizeof err);
    EXPECT(rc == PRBOT_ENOREPO && strstr(err, "not a git repository") && strstr(err, "--repo"), "rc %d: %s", rc,
           err);
    /* a bad name is a plain error, not "base missing" */
    rc = diff_collect(repo_dir, "no-such-branch", "HEAD", NULL, &r, err, sizeof err);
    EXPECT(rc == -1 && strstr(err, "no-such-branch") && strstr(err, "--base"), "rc %d: %s", rc, err);
    remove_repo();
}

static void test_default_base(void)
{
    new_repo();
    REQUIRE(sh("echo 1 > a && git add . && git commit -qm one && git checkout -qb topic") == 0, "repo");
    char base[128], err[512] = "";
    REQUIRE(diff_default_base(repo_dir, base, sizeof base, err, sizeof err) == 0, "%s", err);
    EXPECT(!strcmp(base, "main"), "base %s", base);
    REQUIRE(sh("git clone -q . '%s-clone' && cd '%s-clone' && git checkout -qb other origin/main", repo_dir,
               repo_dir) == 0,
            "clone");
    char clone[300];
    snprintf(clone, sizeof clone, "%s-clone", repo_dir);
    REQUIRE(diff_default_base(clone, base, sizeof base, err, sizeof err) == 0, "%s", err);
    EXPECT(!strcmp(base, "origin/main"), "upstream base %s", base);
    REQUIRE(sh("git branch -m main trunk") == 0, "rename");
    EXPECT(diff_default_base(repo_dir, base, sizeof base, err, sizeof err) == -1 && strstr(err, "--base"),
           "no base: %s", err);
    remove_repo();
}

static void test_api_fallback_filters(void)
{
    diff_result r = {0};
    diff_options opt = {.max_file_bytes = 10};
    const char *exclude[] = {"*.txt"};
    opt.exclude = exclude;
    opt.n_exclude = 1;
    REQUIRE(diff_result_add_file(&r, "src/a.c", NULL, DIFF_MODIFIED, 1, 1, "@@ -1 +1 @@\n-a\n+b\n", &opt) == 0,
            "add");
    REQUIRE(diff_result_add_file(&r, "yarn.lock", NULL, DIFF_MODIFIED, 1, 0, "@@ x\n", &opt) == 0, "add");
    REQUIRE(diff_result_add_file(&r, "n.txt", "o.txt", DIFF_RENAMED, 0, 0, NULL, &opt) == 0, "add");
    REQUIRE(diff_result_apply_filters(&r, &opt) == 0, "filters");
    EXPECT(r.files[0].patch_truncated && r.files[0].patch_len == 0, "10-byte cap truncates at a line end");
    EXPECT(r.files[0].not_shown && r.files[0].skip_reason && strstr(r.files[0].skip_reason, "per-file size cap"),
           "a file with nothing left under the cap is not shown: %d %s", r.files[0].not_shown, r.files[0].skip_reason);
    EXPECT(r.files[1].skip_reason && !strcmp(r.files[1].skip_reason, "lock file") && !r.files[1].not_shown, "lock");
    EXPECT(r.files[2].skip_reason && strstr(r.files[2].skip_reason, "*.txt") && !strcmp(r.files[2].old_path, "o.txt"),
           "exclude");
    diff_result_free(&r);
}

int main(void)
{
    TEST_RUN(test_glob_match);
    TEST_RUN(test_glob_worst_case);
    TEST_RUN(test_attributes_worst_case);
    TEST_RUN(test_head_attributes_ignored);
    TEST_RUN(test_hostile_attributes_and_long_path);
    TEST_RUN(test_capped_files_not_shown);
    TEST_RUN(test_statuses_and_hunks);
    TEST_RUN(test_default_skips);
    TEST_RUN(test_include_exclude);
    TEST_RUN(test_huge_diff_capped);
    TEST_RUN(test_shallow_clone_base_missing);
    TEST_RUN(test_default_base);
    TEST_RUN(test_api_fallback_filters);
    return test_exit_code();
}
