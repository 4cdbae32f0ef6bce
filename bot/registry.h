/*
 * registry.h - the named models a server offers, persisted in its cache.
 *
 * DIR/models.json holds {"models": [{"name": ..., "path": ...}, ...]}: what
 * GET /api/tags lists and POST /api/create, DELETE /api/delete and POST
 * /api/pull change. Every change rewrites the file whole through a temporary
 * file and rename(2), so a crash leaves the old list or the new one, never
 * half of either. Names are at most REGISTRY_NAME_MAX bytes of [A-Za-z0-9._:/-].
 * Not thread-safe: the server holds its lock around every call.
 */
#ifndef PRBOT_REGISTRY_H
#define PRBOT_REGISTRY_H

#include <stddef.h>

#define REGISTRY_NAME_MAX 128

typedef struct {
    char *name, *path;
} registry_entry;

typedef struct {
    char *file; /* DIR/models.json */
    registry_entry *items;
    int n, cap;
} model_registry;

/* The directory models are cached in: opt when given, else $PRBOT_CACHE,
 * else ${XDG_CACHE_HOME:-$HOME/.cache}/prbot. Returns 0, or -1 with err set. */
int model_cache_dir(const char *opt, char *out, size_t cap, char *err, size_t errlen);

/* Reads DIR/models.json (a missing file is an empty registry). Returns 0 or -1. */
int registry_load(model_registry *r, const char *dir, char *err, size_t errlen);
void registry_free(model_registry *r);
/* The path registered under name, or NULL. */
const char *registry_find(const model_registry *r, const char *name);
/* Adds or replaces name -> path and saves. Returns 0 or -1. */
int registry_set(model_registry *r, const char *name, const char *path, char *err, size_t errlen);
/* Removes name and saves. Returns 0, 1 when there was no such name, -1 on error. */
int registry_remove(model_registry *r, const char *name, char *err, size_t errlen);
/* 1 when name is acceptable as a model name. */
int registry_name_valid(const char *name);

#endif
