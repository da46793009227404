/* Per-problem correct counts as plain text: one line per problem,
 * "correct_count samples"; blank lines and '#' comments are ignored. */
#ifndef KPO_STATS_COUNT_FILE_H
#define KPO_STATS_COUNT_FILE_H

#include <stddef.h>

#include "core/error.h"
#include "stats/eval_stats.h"

/* *counts is malloc'ed [*n]. Errors name the file and line. */
int count_file_read(const char *path, problem_count **counts, size_t *n, kpo_error *err);

#endif
