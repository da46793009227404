/* Strict conversion of command-line and config text into numbers: the whole
 * string must be a finite number, so "1e-2x", "nan" or "" are errors that
 * name the parameter. */
#ifndef KPO_CORE_PARSE_H
#define KPO_CORE_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

int parse_double(const char *text, const char *name, double *out, kpo_error *err);
int parse_int64(const char *text, const char *name, int64_t *out, kpo_error *err);

/* "1,5,10" -> {1,5,10}; *out is malloc'ed, caller frees. */
int parse_int64_list(const char *text, const char *name, int64_t **out, size_t *count,
                     kpo_error *err);

#endif
