/*
 * registry.c - the server's named models in DIR/models.json (registry.h).
 *
 * The list is small (a person names models by hand), so it lives in an array
 * and is written whole on every change: to DIR/models.json.tmp.PID, flushed
 * with fsync, then renamed over the old file.
 */
#include "registry.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"

int model_cache_dir(const char *opt, char *out, size_t cap, char *err, size_t errlen)
{
    const char *v;
    if (opt && *opt)
        snprintf(out, cap, "%s", opt);
    else if ((v = getenv("PRBOT_CACHE")) && *v)
        snprintf(out, cap, "%s", v);
    else if ((v = getenv("XDG_CACHE_HOME")) && *v)
        snprintf(out, cap, "%s/prbot", v);
    else if ((v = getenv("HOME")) && *v)
        snprintf(out, cap, "%s/.cache/prbot", v);
    else {
        err_set(err, errlen, "no cache directory: pass --cache DIR or set PRBOT_CACHE");
        return -1;
    }
    return 0;
}

int registry_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > REGISTRY_NAME_MAX) return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("._:/-", *p)))
            return 0;
    return 1;
}

static int add(model_registry *r, const char *name, const char *path)
{
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 8;
        registry_entry *p = realloc(r->items, (size_t)cap * sizeof *p);
        if (!p) return -1;
        r->items = p;
        r->cap = cap;
    }
    registry_entry *e = &r->items[r->n];
    e->name = strdup(name);
    e->path = strdup(path);
    if (!e->name || !e->path) {
        free(e->name);
        free(e->path);
        return -1;
    }
    r->n++;
    return 0;
}

int registry_load(model_registry *r, const char *dir, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    size_t len = strlen(dir) + sizeof "/models.json";
    if (!(r->file = malloc(len))) {
        err_set(err, errlen, "out of memory");
        return -1;
    }
    snprintf(r->file, len, "%s/models.json", dir);
    json_error_t jerr;
    json_t *root = json_load_file(r->file, 0, &jerr);
    if (!root) {
        if (access(r->file, F_OK) != 0) return 0; /* no registry yet */
        err_set(err, errlen, "%s: not valid JSON (line %d: %s); fix or remove it", r->file, jerr.line, jerr.text);
        registry_free(r);
        return -1;
    }
    json_t *models = json_object_get(root, "models");
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m)
    {
        const char *name = json_string_value(json_object_get(m, "name"));
        const char *path = json_string_value(json_object_get(m, "path"));
        if (!name || !path || !registry_name_valid(name) || registry_find(r, name)) continue;
        if (add(r, name, path)) {
            json_decref(root);
            registry_free(r);
            err_set(err, errlen, "out of memory");
            return -1;
        }
    }
    json_decref(root);
    return 0;
}

void registry_free(model_registry *r)
{
    for (int i = 0; i < r->n; i++) {
        free(r->items[i].name);
        free(r->items[i].path);
    }
    free(r->items);
    free(r->file);
    memset(r, 0, sizeof *r);
}

const char *registry_find(const model_registry *r, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->items[i].name, name)) return r->items[i].path;
    return NULL;
}

static int save(const model_registry *r, char *err, size_t errlen)
{
    json_t *models = json_array();
    for (int i = 0; i < r->n; i++)
        json_array_append_new(models, json_pack("{s:s,s:s}", "name", r->items[i].name, "path", r->items[i].path));
    json_t *root = json_pack("{s:i,s:o}", "version", 1, "models", models);
    char *text = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
    json_decref(root);
    if (!text) {
        err_set(err, errlen, "cannot encode the model registry (a path that is not UTF-8?)");
        return -1;
    }
    size_t tlen = strlen(r->file) + 32;
    char *tmp = malloc(tlen);
    FILE *f = NULL;
    int ok = 0;
    if (tmp) {
        snprintf(tmp, tlen, "%s.tmp.%d", r->file, (int)getpid());
        if ((f = fopen(tmp, "w"))) {
            ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF && fflush(f) == 0 && fsync(fileno(f)) == 0;
            ok = fclose(f) == 0 && ok;
            ok = ok && rename(tmp, r->file) == 0;
        }
        if (!ok) {
            err_set(err, errlen, "cannot write %s: %s", r->file, strerror(errno));
            unlink(tmp);
        }
    } else {
        err_set(err, errlen, "out of memory");
    }
    free(tmp);
    free(text);
    return ok ? 0 : -1;
}

int registry_set(model_registry *r, const char *name, const char *path, char *err, size_t errlen)
{
    if (!registry_name_valid(name)) {
        err_set(err, errlen, "invalid model name '%.140s': use at most %d of A-Z a-z 0-9 . _ : / -", name,
                REGISTRY_NAME_MAX);
        return -1;
    }
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->items[i].name, name)) {
            char *p = strdup(path);
            if (!p) break;
            free(r->items[i].path);
            r->items[i].path = p;
            return save(r, err, errlen);
        }
    if (add(r, name, path)) {
        err_set(err, errlen, "out of memory");
        return -1;
    }
    return save(r, err, errlen);
}

int registry_remove(model_registry *r, const char *name, char *err, size_t errlen)
{
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->items[i].name, name)) {
            free(r->items[i].name);
            free(r->items[i].path);
            memmove(&r->items[i], &r->items[i + 1], (size_t)(r->n - i - 1) * sizeof *r->items);
            r->n--;
            return save(r, err, errlen) ? -1 : 0;
        }
    return 1;
}
