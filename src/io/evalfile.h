/* The eval file: one HDF5 file per `kpo eval`, holding per-problem correct
 * counts so that two evaluations can be compared problem by problem.
 *
 * Layout (docs/eval.md):
 *   /                  attrs: format="kpo-eval", format_version, build_info, created,
 *                      and the settings (model, tokenizer, device, dtype, k,
 *                      temperature, top_p, ...)
 *   /bench/<name>/correct        int64 [n_problems] correct samples of each problem
 *   /bench/<name>/samples        int64 [n_problems] samples drawn (= k)
 *   /bench/<name>/problem_index  int64 [n_problems] the problem's index in the source
 *   /bench/<name>      attrs: k, avg_at_k, pass_at_k, source, n_problems */
#ifndef KPO_IO_EVALFILE_H
#define KPO_IO_EVALFILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "stats/eval_stats.h"

#define EVALFILE_FORMAT_VERSION 1

/* A root attribute: string-valued, so settings keep their spelling. */
typedef struct evalfile_attr {
    const char *name;
    const char *value;
} evalfile_attr;

typedef struct evalfile_bench {
    const char *name;
    const char *source;
    int64_t n_problems;
    const int64_t *correct;       /* [n_problems] */
    const int64_t *samples;       /* [n_problems] */
    const int64_t *problem_index; /* [n_problems] */
    int64_t k;
    double avg_at_k, pass_at_k;
} evalfile_bench;

/* Writes the whole file to a temporary name and links it into place, so
 * the path holds either nothing or a complete file; an existing path is
 * never overwritten. */
int evalfile_write(const char *path, const evalfile_attr *attrs, size_t n_attrs,
                   const evalfile_bench *benches, size_t n_benches, kpo_error *err);

/* True when path is an HDF5 file (by its signature), whatever it holds. */
int evalfile_is_hdf5(const char *path);

/* The benchmark names in the file, sorted; *names and each name malloc'ed. */
int evalfile_list(const char *path, char ***names, size_t *n, kpo_error *err);
void evalfile_names_free(char **names, size_t n);

/* One benchmark's counts (malloc'ed [*n]) and, when problem_index is not
 * NULL, the source indices (malloc'ed [*n]). */
int evalfile_read(const char *path, const char *bench, problem_count **counts,
                  int64_t **problem_index, size_t *n, kpo_error *err);

#endif
