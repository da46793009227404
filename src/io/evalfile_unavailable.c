/* The eval-file API in a build without HDF5: every call explains why it
 * cannot work, so the rest of kpo still builds and runs. */
#include "io/evalfile.h"

#include <stdlib.h>

static int unavailable(const char *path, kpo_error *err)
{
    return error_set(err, "%s: kpo was built without HDF5 (install libhdf5-dev and rebuild)",
                     path);
}

int evalfile_write(const char *path, const evalfile_attr *attrs, size_t n_attrs,
                   const evalfile_bench *benches, size_t n_benches, kpo_error *err)
{
    (void)attrs;
    (void)n_attrs;
    (void)benches;
    (void)n_benches;
    return unavailable(path, err);
}

int evalfile_list(const char *path, char ***names, size_t *n, kpo_error *err)
{
    *names = NULL;
    *n = 0;
    return unavailable(path, err);
}

void evalfile_names_free(char **names, size_t n)
{
    (void)n;
    free(names);
}

int evalfile_read(const char *path, const char *bench, problem_count **counts,
                  int64_t **problem_index, size_t *n, kpo_error *err)
{
    (void)bench;
    (void)problem_index;
    *counts = NULL;
    *n = 0;
    return unavailable(path, err);
}
