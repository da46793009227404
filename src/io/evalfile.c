/* Writing and reading eval files (evalfile.h, docs/eval.md). Writes are
 * checked call by call and published whole; reads check each dataset's
 * rank, length and dtype and each count's range before using it. */
#include "io/evalfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/build_info.h"
#include "core/file_util.h"
#include "io/hdf5_util.h"

/* A fixed-size 1-D int64 dataset holding data[n]. */
static int write_int64_array(hid_t group, const char *name, const int64_t *data, int64_t n)
{
    hsize_t dims = (hsize_t)n;
    hid_t space = H5Screate_simple(1, &dims, NULL);
    hid_t dset = space < 0 ? -1
                           : H5Dcreate2(group, name, H5T_STD_I64LE, space, H5P_DEFAULT,
                                        H5P_DEFAULT, H5P_DEFAULT);
    int ok = dset >= 0 &&
             H5Dwrite(dset, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    ok = h5u_close(dset) == KPO_OK && ok;
    ok = h5u_close(space) == KPO_OK && ok;
    return ok ? KPO_OK : KPO_ERR;
}

static int write_bench(hid_t benches, const evalfile_bench *b)
{
    hid_t group = h5u_group(benches, b->name);
    if (group < 0)
        return KPO_ERR;
    int ok = write_int64_array(group, "correct", b->correct, b->n_problems) == KPO_OK &&
             write_int64_array(group, "samples", b->samples, b->n_problems) == KPO_OK &&
             write_int64_array(group, "problem_index", b->problem_index, b->n_problems) ==
                 KPO_OK &&
             h5u_write_int_attr(group, "k", b->k) == KPO_OK &&
             h5u_write_int_attr(group, "n_problems", b->n_problems) == KPO_OK &&
             h5u_write_double_attr(group, "avg_at_k", b->avg_at_k) == KPO_OK &&
             h5u_write_double_attr(group, "pass_at_k", b->pass_at_k) == KPO_OK &&
             h5u_write_string_attr(group, "source", b->source) == KPO_OK;
    ok = h5u_close(group) == KPO_OK && ok;
    return ok ? KPO_OK : KPO_ERR;
}

static int write_layout(hid_t file, const evalfile_attr *attrs, size_t n_attrs,
                        const evalfile_bench *benches, size_t n_benches)
{
    char build[512], created[64];
    build_info_describe(build, sizeof build);
    time_t now = time(NULL);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    int ok = h5u_write_string_attr(file, "format", "kpo-eval") == KPO_OK &&
             h5u_write_int_attr(file, "format_version", EVALFILE_FORMAT_VERSION) == KPO_OK &&
             h5u_write_string_attr(file, "build_info", build) == KPO_OK &&
             h5u_write_string_attr(file, "created", created) == KPO_OK;
    for (size_t j = 0; ok && j < n_attrs; j++)
        ok = h5u_write_string_attr(file, attrs[j].name, attrs[j].value) == KPO_OK;
    hid_t group = ok ? h5u_group(file, "bench") : -1;
    ok = ok && group >= 0;
    for (size_t j = 0; ok && j < n_benches; j++)
        ok = write_bench(group, &benches[j]) == KPO_OK;
    ok = h5u_close(group) == KPO_OK && ok;
    return ok ? KPO_OK : KPO_ERR;
}

int evalfile_write(const char *path, const evalfile_attr *attrs, size_t n_attrs,
                   const evalfile_bench *benches, size_t n_benches, kpo_error *err)
{
    h5u_silence();
    if (file_exists(path))
        return error_set(err, "%s: already exists; refusing to overwrite an eval file", path);
    char temp[4200];
    file_temp_path(path, temp, sizeof temp);
    hid_t file = H5Fcreate(temp, H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0)
        return error_set(err, "%s: cannot create the eval file (%s)", temp,
                         errno ? strerror(errno) : "HDF5 error");
    int ok = write_layout(file, attrs, n_attrs, benches, n_benches) == KPO_OK;
    ok = H5Fclose(file) >= 0 && ok;
    if (!ok) {
        unlink(temp);
        return error_set(err, "%s: HDF5 error while writing the eval file", path);
    }
    /* link() fails rather than replace an existing name, so a file that
     * appeared meanwhile is never clobbered, and the name only ever points
     * at a complete file. */
    if (link(temp, path) != 0) {
        int code = errno;
        unlink(temp);
        return error_set(err, "%s: cannot publish the eval file (%s)", path, strerror(code));
    }
    unlink(temp);
    return KPO_OK;
}

static herr_t collect_name(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    (void)group;
    (void)info;
    char ***names = data;
    size_t n = 0;
    while ((*names)[n])
        n++;
    char **grown = realloc(*names, (n + 2) * sizeof *grown);
    if (!grown)
        return -1;
    grown[n] = strdup(name);
    grown[n + 1] = NULL;
    *names = grown;
    return grown[n] ? 0 : -1;
}

/* Opens path read-only and checks the format attribute. */
static hid_t open_eval(const char *path, kpo_error *err)
{
    h5u_silence();
    if (!file_exists(path)) {
        error_set(err, "%s: no such file", path);
        return -1;
    }
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        error_set(err, "%s: not a readable HDF5 file", path);
        return -1;
    }
    char *format = NULL;
    if (h5u_read_string_attr(file, "format", &format) != KPO_OK ||
        strcmp(format, "kpo-eval") != 0) {
        error_set(err, "%s: not a kpo eval file (format attribute '%s', expected 'kpo-eval')",
                  path, format ? format : "");
        free(format);
        H5Fclose(file);
        return -1;
    }
    free(format);
    return file;
}

void evalfile_names_free(char **names, size_t n)
{
    for (size_t j = 0; names && j < n; j++)
        free(names[j]);
    free(names);
}

int evalfile_list(const char *path, char ***names, size_t *n, kpo_error *err)
{
    *names = NULL;
    *n = 0;
    hid_t file = open_eval(path, err);
    if (file < 0)
        return KPO_ERR;
    char **list = calloc(1, sizeof *list);
    herr_t status = -1;
    if (list && H5Lexists(file, "bench", H5P_DEFAULT) > 0) {
        hid_t group = H5Gopen2(file, "bench", H5P_DEFAULT);
        status = H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_name, &list);
        H5Gclose(group);
    }
    H5Fclose(file);
    size_t count = 0;
    while (list && list[count])
        count++;
    if (status < 0) {
        evalfile_names_free(list, count);
        return error_set(err, "%s: cannot list the /bench group", path);
    }
    *names = list;
    *n = count;
    return KPO_OK;
}

/* Samples per problem a reader accepts: far above any real eval, low
 * enough that counts stay exact in a double and a long (a flipped count
 * such as 140737488355488 is refused). */
#define EVALFILE_MAX_SAMPLES ((int64_t)1 << 30)

/* Reads group_path/name, an int64 [n] dataset, into a malloc'ed array; err
 * names the file and dataset when it is absent or of another shape. */
static int read_int64_array(hid_t group, const char *path, const char *group_path,
                            const char *name, int64_t n, int64_t **out, kpo_error *err)
{
    *out = NULL;
    char full[320];
    snprintf(full, sizeof full, "%s/%s", group_path, name);
    if (H5Lexists(group, name, H5P_DEFAULT) <= 0)
        return error_set(err, "%s: /%s is missing", path, full);
    hid_t dset = H5Dopen2(group, name, H5P_DEFAULT);
    if (dset < 0)
        return error_set(err, "%s: /%s is not a dataset", path, full);
    int64_t rows = -1;
    int status = h5u_check_rows(dset, path, full, H5T_INTEGER, 0, &rows, err);
    if (status == KPO_OK && rows != n)
        status = error_set(err, "%s: /%s has %lld entries, /%s/correct %lld", path, full,
                           (long long)rows, group_path, (long long)n);
    if (status == KPO_OK) {
        *out = malloc((size_t)(n + 1) * sizeof **out);
        if (!*out)
            status = error_set(err, "%s: out of memory for /%s", path, full);
        else if (h5u_read_rows(dset, H5T_NATIVE_INT64, 0, 0, n, *out) != KPO_OK)
            status = error_set(err, "%s: /%s is unreadable", path, full);
    }
    H5Dclose(dset);
    if (status != KPO_OK) {
        free(*out);
        *out = NULL;
    }
    return status;
}

int evalfile_read(const char *path, const char *bench, problem_count **counts,
                  int64_t **problem_index, size_t *n, kpo_error *err)
{
    *counts = NULL;
    *n = 0;
    hid_t file = open_eval(path, err);
    if (file < 0)
        return KPO_ERR;
    char group_path[256];
    snprintf(group_path, sizeof group_path, "bench/%s", bench);
    if (H5Lexists(file, "bench", H5P_DEFAULT) <= 0 || H5Lexists(file, group_path, H5P_DEFAULT) <= 0) {
        H5Fclose(file);
        return error_set(err, "%s: no benchmark '%s'", path, bench);
    }
    hid_t group = H5Gopen2(file, group_path, H5P_DEFAULT);
    if (group < 0) {
        H5Fclose(file);
        return error_set(err, "%s: /%s is not a group", path, group_path);
    }
    /* /correct sets the length the other two must have. */
    char correct_path[320];
    snprintf(correct_path, sizeof correct_path, "%s/correct", group_path);
    int64_t rows = -1;
    int status = KPO_OK;
    hid_t dset = H5Lexists(group, "correct", H5P_DEFAULT) > 0
                     ? H5Dopen2(group, "correct", H5P_DEFAULT)
                     : -1;
    if (dset < 0)
        status = error_set(err, "%s: /%s is missing or not a dataset", path, correct_path);
    else
        status = h5u_check_rows(dset, path, correct_path, H5T_INTEGER, 0, &rows, err);
    h5u_close(dset);
    if (status == KPO_OK && rows > (int64_t)(SIZE_MAX / 2 / sizeof(problem_count)))
        status = error_set(err, "%s: /%s claims %lld problems", path, correct_path,
                           (long long)rows);
    int64_t *correct = NULL, *samples = NULL, *index = NULL;
    if (status == KPO_OK)
        status = read_int64_array(group, path, group_path, "correct", rows, &correct, err);
    if (status == KPO_OK)
        status = read_int64_array(group, path, group_path, "samples", rows, &samples, err);
    if (status == KPO_OK && problem_index)
        status = read_int64_array(group, path, group_path, "problem_index", rows, &index, err);
    H5Gclose(group);
    H5Fclose(file);
    problem_count *c = status == KPO_OK ? malloc((size_t)(rows + 1) * sizeof *c) : NULL;
    if (status == KPO_OK && !c)
        status = error_set(err, "%s: out of memory", path);
    for (int64_t i = 0; status == KPO_OK && i < rows; i++) {
        if (samples[i] < 1 || samples[i] > EVALFILE_MAX_SAMPLES || correct[i] < 0 ||
            correct[i] > samples[i])
            status = error_set(err, "%s: /%s/correct, /%s/samples: problem %lld has %lld "
                                    "correct of %lld samples (need 0 <= correct <= samples, "
                                    "1 <= samples <= %lld)",
                               path, group_path, group_path, (long long)i, (long long)correct[i],
                               (long long)samples[i], (long long)EVALFILE_MAX_SAMPLES);
        else
            c[i] = (problem_count){.correct = (long)correct[i], .samples = (long)samples[i]};
    }
    if (status == KPO_OK && rows == 0)
        status = error_set(err, "%s: /%s holds no problems", path, group_path);
    free(correct);
    free(samples);
    if (status != KPO_OK) {
        free(c);
        free(index);
        return KPO_ERR;
    }
    *counts = c;
    if (problem_index)
        *problem_index = index;
    *n = (size_t)rows;
    return KPO_OK;
}
