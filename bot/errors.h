/*
 * errors.h - bot/'s name for engine/errors.h (err_set, the error-line helper
 * both layers use).
 */
#include "../engine/errors.h"
