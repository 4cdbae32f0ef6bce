/*
 * test_linemap.c - bot/linemap.c: hunks, commentable lines, anchoring and
 * the numbered rendering, on patches written the way git and GitHub's PR
 * files API write them, and on a real `git diff` of a repository built
 * here with the git CLI (an independent implementation of the numbering).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../bot/linemap.h"
#include "test.h"

/* Two hunks: new lines 1-4 (one added) and 18-23 (one replaced by two). */
static const char two_hunks[] = "@@ -1,3 +1,4 @@\n"
                                " first\n"
                                "+inserted\n"
                                " second\n"
                                " third\n"
                                "@@ -17,6 +18,7 @@ static int f(void)\n"
                                " ctx a\n"
                                " ctx b\n"
                                "-old c\n"
                                "+new c\n"
                                "+new d\n"
                                " ctx e\n"
                                " ctx f\n"
                                "\\ No newline at end of file\n";

static void test_parse_two_hunks(void)
{
    linemap m;
    REQUIRE(linemap_parse(two_hunks, strlen(two_hunks), &m, NULL, 0) == 0, "parse");
    REQUIRE(m.n_hunks == 2, "%zu hunks", m.n_hunks);
    EXPECT(m.hunks[0].old_start == 1 && m.hunks[0].old_count == 3 && m.hunks[0].new_start == 1 &&
               m.hunks[0].new_count == 4,
           "hunk 0 header");
    EXPECT(m.hunks[0].first_new == 1 && m.hunks[0].last_new == 4, "hunk 0 lines %d-%d", m.hunks[0].first_new,
           m.hunks[0].last_new);
    EXPECT(m.hunks[1].first_new == 18 && m.hunks[1].last_new == 23, "hunk 1 lines %d-%d", m.hunks[1].first_new,
           m.hunks[1].last_new);
    EXPECT(m.n_lines == 11, "%zu lines", m.n_lines);
    EXPECT(m.max_new == 23, "max_new %d", m.max_new);
    const linemap_line *l = linemap_right_line(&m, 2);
    REQUIRE(l && l->kind == '+' && l->old_no == 0, "line 2 is added");
    EXPECT(l->len == 8 && !memcmp(two_hunks + l->offset, "inserted", 8), "line 2 text");
    l = linemap_right_line(&m, 3);
    REQUIRE(l && l->kind == ' ' && l->old_no == 2, "line 3 is context, old 2");
    l = linemap_right_line(&m, 20);
    REQUIRE(l && l->kind == '+' && !memcmp(two_hunks + l->offset, "new c", 5), "line 20 is 'new c'");
    l = linemap_right_line(&m, 23);
    REQUIRE(l && l->kind == ' ' && l->old_no == 21, "line 23 context at old 21 (%d)", l ? l->old_no : -1);
    /* the deleted line has an old number only */
    EXPECT(m.lines[m.hunks[1].first_line + 2].kind == '-' && m.lines[m.hunks[1].first_line + 2].old_no == 19 &&
               m.lines[m.hunks[1].first_line + 2].new_no == 0,
           "deleted line numbering");
    for (int line = 1; line <= 30; line++) {
        int want = (line >= 1 && line <= 4) || (line >= 18 && line <= 23);
        EXPECT(linemap_commentable(&m, line) == want, "line %d commentable=%d", line, !want);
    }
    EXPECT(linemap_hunk_of(&m, 4) == 0 && linemap_hunk_of(&m, 18) == 1 && linemap_hunk_of(&m, 10) == -1, "hunk_of");
    linemap_free(&m);
}

static void test_anchor(void)
{
    linemap m;
    REQUIRE(linemap_parse(two_hunks, strlen(two_hunks), &m, NULL, 0) == 0, "parse");
    EXPECT(linemap_anchor(&m, 20, 3, NULL, NULL) == 20, "inside stays");
    EXPECT(linemap_anchor(&m, 7, 3, NULL, NULL) == 4, "3 after hunk 0 -> 4 (%d)", linemap_anchor(&m, 7, 3, NULL, NULL));
    EXPECT(linemap_anchor(&m, 8, 3, NULL, NULL) == 0, "4 after hunk 0 -> none");
    EXPECT(linemap_anchor(&m, 15, 3, NULL, NULL) == 18, "3 before hunk 1 -> 18");
    EXPECT(linemap_anchor(&m, 26, 3, NULL, NULL) == 23, "3 after hunk 1 -> 23");
    EXPECT(linemap_anchor(&m, 27, 3, NULL, NULL) == 0, "4 after hunk 1 -> none");
    EXPECT(linemap_anchor(&m, 0, 3, NULL, NULL) == 0 && linemap_anchor(&m, -5, 3, NULL, NULL) == 0, "non-positive");
    EXPECT(linemap_anchor(&m, 7, 0, NULL, NULL) == 0, "distance 0 outside");
    linemap_free(&m);
}

/* An extra condition: only added lines. */
static linemap *accept_map;
static int only_added(void *user, int line)
{
    (void)user;
    const linemap_line *l = linemap_right_line(accept_map, line);
    return l && l->kind == '+';
}

static void test_anchor_with_condition(void)
{
    linemap m;
    REQUIRE(linemap_parse(two_hunks, strlen(two_hunks), &m, NULL, 0) == 0, "parse");
    accept_map = &m;
    EXPECT(linemap_anchor(&m, 18, 3, only_added, NULL) == 20, "18 -> nearest added 20 (%d)",
           linemap_anchor(&m, 18, 3, only_added, NULL));
    EXPECT(linemap_anchor(&m, 23, 3, only_added, NULL) == 21, "23 -> 21");
    EXPECT(linemap_anchor(&m, 4, 3, only_added, NULL) == 2, "4 -> 2");
    EXPECT(linemap_anchor(&m, 4, 1, only_added, NULL) == 0, "4 within 1 -> none");
    /* equally near: the lower line */
    EXPECT(linemap_anchor(&m, 3, 3, NULL, NULL) == 3, "itself");
    linemap_free(&m);
}

static void test_new_deleted_and_damaged(void)
{
    linemap m;
    const char *added = "@@ -0,0 +1,2 @@\n+a\n+b";
    REQUIRE(linemap_parse(added, strlen(added), &m, NULL, 0) == 0, "parse");
    EXPECT(m.n_hunks == 1 && linemap_commentable(&m, 1) && linemap_commentable(&m, 2) && !linemap_commentable(&m, 3),
           "new file 1-2 (no trailing newline)");
    linemap_free(&m);
    const char *deleted = "@@ -1,2 +0,0 @@\n-a\n-b\n";
    REQUIRE(linemap_parse(deleted, strlen(deleted), &m, NULL, 0) == 0, "parse");
    EXPECT(m.n_hunks == 1 && m.max_new == 0 && !linemap_commentable(&m, 0) && !linemap_commentable(&m, 1),
           "deleted file has no RIGHT lines");
    EXPECT(linemap_anchor(&m, 1, 3, NULL, NULL) == 0, "nothing to anchor to");
    linemap_free(&m);
    /* text before the header, a malformed header, a body line after garbage, CRLF */
    const char *damaged = "diff --git a/x b/x\n+++ b/x\n@@ -a +b @@\n+no\n@@ -5 +5,2 @@\r\n ctx\r\n+add\r\ngarbage\n+after\n";
    REQUIRE(linemap_parse(damaged, strlen(damaged), &m, NULL, 0) == 0, "parse");
    EXPECT(m.n_hunks == 1 && m.hunks[0].old_count == 1 && m.hunks[0].first_new == 5 && m.hunks[0].last_new == 6,
           "only the good hunk, lines 5-6 (%zu hunks)", m.n_hunks);
    const linemap_line *l = linemap_right_line(&m, 6);
    EXPECT(l && l->len == 3 && !memcmp(damaged + l->offset, "add", 3), "CR not part of the text");
    EXPECT(!linemap_commentable(&m, 7), "no line after garbage");
    linemap_free(&m);
    /* a patch cut short by a size cap: fewer lines than the header promises */
    const char *cut = "@@ -1,10 +1,12 @@\n a\n+b\n c\n";
    REQUIRE(linemap_parse(cut, strlen(cut), &m, NULL, 0) == 0, "parse");
    EXPECT(m.hunks[0].last_new == 3 && !linemap_commentable(&m, 4), "only what is there");
    linemap_free(&m);
    /* found by fuzz_findings: hunks that overlap or go backwards gave lines two
     * hunks, so a range checked in one hunk left the other */
    const char *overlap = "@@ -1,3 +1,4 @@\n a\n-b\n+c\n+d\n e\n@@ -1,3 +1,4 @@\n x\n+y\n@@ -9 +9 @@\n z\n";
    REQUIRE(linemap_parse(overlap, strlen(overlap), &m, NULL, 0) == 0, "parse");
    EXPECT(m.n_hunks == 2 && m.hunks[0].last_new == 4 && m.hunks[1].first_new == 9,
           "the overlapping hunk is skipped, the next good one kept (%zu hunks)", m.n_hunks);
    EXPECT(linemap_hunk_of(&m, 3) == 0 && linemap_hunk_of(&m, 4) == 0, "lines 1-4 belong to the first hunk only");
    const linemap_line *l4 = linemap_right_line(&m, 4);
    EXPECT(l4 && !memcmp(overlap + l4->offset, "e", 1), "line 4 is the first hunk's text");
    linemap_free(&m);
    REQUIRE(linemap_parse(NULL, 0, &m, NULL, 0) == 0 && m.n_hunks == 0, "empty");
    linemap_free(&m);
}

static void test_render(void)
{
    textbuf b = {0};
    linemap_render(two_hunks, strlen(two_hunks), &b);
    REQUIRE(!b.failed && b.data, "render");
    const char *want = "@@ -1,3 +1,4 @@\n"
                       "   1  first\n"
                       "   2 +inserted\n"
                       "   3  second\n"
                       "   4  third\n"
                       "@@ -17,6 +18,7 @@\n"
                       "  18  ctx a\n"
                       "  19  ctx b\n"
                       "     -old c\n"
                       "  20 +new c\n"
                       "  21 +new d\n"
                       "  22  ctx e\n"
                       "  23  ctx f\n";
    EXPECT(!strcmp(b.data, want), "rendered:\n%s", b.data);
    textbuf_free(&b);
}

/* The numbers of a real `git diff` agree with git's own view of the new file. */
static void test_against_git(void)
{
    char dir[] = "/tmp/prbot-test-linemap-XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL, "mkdtemp");
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && git init -q . && seq 1 200 | sed 's/^/line /' > f.txt && cp f.txt base.txt && "
             "sed -i -e '5d' -e '50s/.*/changed 50/' -e '120a\\\ninserted a\\\ninserted b' -e '199d' f.txt && "
             "git diff --no-index -U3 base.txt f.txt > out.patch; test -s out.patch",
             dir);
    REQUIRE(system(cmd) == 0, "git diff failed");
    char path[512];
    snprintf(path, sizeof path, "%s/out.patch", dir);
    FILE *fp = fopen(path, "rb");
    REQUIRE(fp, "open patch");
    static char patch[1 << 16];
    size_t n = fread(patch, 1, sizeof patch - 1, fp);
    fclose(fp);
    patch[n] = 0;
    snprintf(path, sizeof path, "%s/f.txt", dir);
    fp = fopen(path, "rb");
    REQUIRE(fp, "open new file");
    static char lines[300][64];
    int n_lines = 0;
    while (n_lines < 300 && fgets(lines[n_lines + 1], sizeof lines[0], fp)) {
        lines[n_lines + 1][strcspn(lines[n_lines + 1], "\n")] = 0;
        n_lines++;
    }
    fclose(fp);
    linemap m;
    REQUIRE(linemap_parse(patch, n, &m, NULL, 0) == 0, "parse");
    EXPECT(m.n_hunks == 4, "%zu hunks", m.n_hunks);
    int checked = 0;
    for (size_t i = 0; i < m.n_lines; i++) {
        const linemap_line *l = &m.lines[i];
        if (!l->new_no) continue;
        REQUIRE(l->new_no <= n_lines, "line %d past the end", l->new_no);
        EXPECT(l->len == strlen(lines[l->new_no]) && !memcmp(patch + l->offset, lines[l->new_no], l->len),
               "line %d: patch says '%.*s', file says '%s'", l->new_no, (int)l->len, patch + l->offset,
               lines[l->new_no]);
        checked++;
    }
    EXPECT(checked > 20, "only %d lines checked", checked);
    EXPECT(linemap_commentable(&m, 121) && linemap_commentable(&m, 122), "inserted lines commentable");
    EXPECT(!linemap_commentable(&m, 100), "untouched middle not commentable");
    linemap_free(&m);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void)
{
    TEST_RUN(test_parse_two_hunks);
    TEST_RUN(test_anchor);
    TEST_RUN(test_anchor_with_condition);
    TEST_RUN(test_new_deleted_and_damaged);
    TEST_RUN(test_render);
    TEST_RUN(test_against_git);
    return test_exit_code();
}
