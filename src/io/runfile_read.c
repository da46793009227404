/* Reading run files, for the offline tools (kpo diag, kpo filter). Every
 * dataset is checked against the layout (rank, width, dtype) before a
 * buffer is sized from it, and each error names the file and dataset. */
#include <stdlib.h>
#include <string.h>

#include "io/hdf5_util.h"
#include "io/runfile.h"
#include "io/runfile_internal.h"

/* Mini-batches per step a reader accepts (the writer's limit). */
enum { MAX_MINIBATCHES = 1 << 16 };

/* Opens the dataset at path (no leading '/') and checks its layout; -1 with
 * err naming it when absent or of another shape or type. */
static hid_t open_checked(hid_t file, const char *file_path, const char *path, H5T_class_t cls,
                          hsize_t cols, int64_t *rows, kpo_error *err)
{
    hid_t d = runfile_open_dataset(file, path);
    if (d < 0) {
        error_set(err, "%s: /%s is missing or not a dataset", file_path, path);
        return -1;
    }
    if (h5u_check_rows(d, file_path, path, cls, cols, rows, err) != KPO_OK) {
        H5Dclose(d);
        return -1;
    }
    return d;
}

/* The first n entries of the int64 [>= n] dataset at path. */
static int read_int64_set(hid_t file, const char *file_path, const char *path, int64_t n,
                          int64_t *out, kpo_error *err)
{
    int64_t rows;
    hid_t d = open_checked(file, file_path, path, H5T_INTEGER, 0, &rows, err);
    if (d < 0)
        return KPO_ERR;
    int status = KPO_OK;
    if (rows < n)
        status = error_set(err, "%s: /%s has %lld rows, fewer than /samples/offsets (%lld)",
                           file_path, path, (long long)rows, (long long)n);
    else if (h5u_read_rows(d, H5T_NATIVE_INT64, 0, 0, n, out) != KPO_OK)
        status = error_set(err, "%s: /%s is unreadable", file_path, path);
    H5Dclose(d);
    return status;
}

/* Closes two datasets and the file (ids < 0 skipped); a failure there is
 * reported too when nothing failed before. Returns ok, cleared on failure. */
static int close_all(const char *path, int ok, hid_t a, hid_t b, hid_t file, kpo_error *err)
{
    int closed = h5u_close(a) == KPO_OK;
    closed = h5u_close(b) == KPO_OK && closed;
    closed = h5u_close(file) == KPO_OK && closed;
    if (ok && !closed)
        error_set(err, "%s: HDF5 error while closing the file", path);
    return ok && closed;
}

/* malloc of n * size bytes, NULL (not a wrapped size) when that overflows. */
static void *alloc_array(int64_t n, size_t size)
{
    if (n < 0 || (uint64_t)n > SIZE_MAX / size / 2)
        return NULL;
    return malloc((size_t)(n ? n : 1) * size);
}

int runfile_read_innovation(const char *path, runfile_innovation *out, kpo_error *err)
{
    memset(out, 0, sizeof *out);
    hid_t file = runfile_open_hdf5(path, H5F_ACC_RDONLY, err);
    if (file < 0)
        return KPO_ERR;
    int64_t n = -1, n_acc = -1;
    hid_t steps = open_checked(file, path, "steps/step", H5T_INTEGER, 0, &n, err);
    hid_t acc = steps < 0 ? -1
                          : open_checked(file, path, "innovation/accumulator", H5T_FLOAT,
                                         INNOV_STATS_FLAT_LEN, &n_acc, err);
    int ok = steps >= 0 && acc >= 0;
    if (ok && n_acc < n)
        n = n_acc; /* tolerate a file cut off mid-step */
    double *flat = NULL;
    if (ok) {
        out->n_rows = n;
        out->step = alloc_array(n, sizeof *out->step);
        out->stats = alloc_array(n, sizeof *out->stats);
        flat = alloc_array(n, INNOV_STATS_FLAT_LEN * sizeof *flat);
        ok = out->step && out->stats && flat;
        if (!ok)
            error_set(err, "%s: out of memory for %lld rows of /innovation/accumulator", path,
                      (long long)n);
        else if (h5u_read_rows(steps, H5T_NATIVE_INT64, 0, 0, n, out->step) != KPO_OK)
            ok = error_set(err, "%s: /steps/step is unreadable", path) == KPO_OK;
        else if (h5u_read_rows(acc, H5T_NATIVE_DOUBLE, INNOV_STATS_FLAT_LEN, 0, n, flat) != KPO_OK)
            ok = error_set(err, "%s: /innovation/accumulator is unreadable", path) == KPO_OK;
    }
    for (int64_t r = 0; ok && r < n; r++)
        innov_stats_from_flat(&out->stats[r], flat + r * INNOV_STATS_FLAT_LEN);
    free(flat);
    ok = close_all(path, ok, steps, acc, file, err);
    if (!ok) {
        runfile_innovation_free(out);
        return KPO_ERR;
    }
    return KPO_OK;
}

void runfile_innovation_free(runfile_innovation *table)
{
    free(table->step);
    free(table->stats);
    memset(table, 0, sizeof *table);
}

int runfile_read_samples(const char *path, runfile_samples *out, kpo_error *err)
{
    memset(out, 0, sizeof *out);
    hid_t file = runfile_open_hdf5(path, H5F_ACC_RDONLY, err);
    if (file < 0)
        return KPO_ERR;
    int64_t n = -1, n_values = -1;
    hid_t offsets = open_checked(file, path, "samples/offsets", H5T_INTEGER, 0, &n, err);
    hid_t values = offsets < 0 ? -1
                               : open_checked(file, path, "samples/values", H5T_FLOAT, 0,
                                              &n_values, err);
    int ok = offsets >= 0 && values >= 0;
    if (ok && n >= INT64_MAX / 16)
        ok = error_set(err, "%s: /samples/offsets claims %lld responses", path, (long long)n) ==
             KPO_OK;
    int64_t *starts = NULL, *lengths = NULL;
    if (ok) {
        out->n_responses = n;
        starts = alloc_array(n + 1, sizeof *starts);
        lengths = alloc_array(n + 1, sizeof *lengths);
        out->offsets = alloc_array(n + 1, sizeof *out->offsets);
        out->step = alloc_array(n + 1, sizeof *out->step);
        out->minibatch = alloc_array(n + 1, sizeof *out->minibatch);
        ok = starts && lengths && out->offsets && out->step && out->minibatch;
        if (!ok)
            error_set(err, "%s: out of memory for %lld responses of /samples/offsets", path,
                      (long long)n);
        ok = ok && read_int64_set(file, path, "samples/offsets", n, starts, err) == KPO_OK &&
             read_int64_set(file, path, "samples/lengths", n, lengths, err) == KPO_OK &&
             read_int64_set(file, path, "samples/step", n, out->step, err) == KPO_OK;
    }
    /* Files written before /samples/minibatch read as before, every
     * response's mini-batch unknown. */
    if (ok && H5Lexists(file, "samples/minibatch", H5P_DEFAULT) > 0)
        ok = read_int64_set(file, path, "samples/minibatch", n, out->minibatch, err) == KPO_OK;
    else
        for (int64_t r = 0; ok && r < n; r++)
            out->minibatch[r] = -1;
    /* Repack into one contiguous CSR array (responses are stored in order,
     * but a reader should not depend on it). */
    int64_t total = 0;
    for (int64_t r = 0; ok && r < n; r++) {
        /* compared by differences: starts + lengths, or the total, could overflow */
        if (!(lengths[r] >= 0 && starts[r] >= 0 && starts[r] <= n_values &&
              lengths[r] <= n_values - starts[r] && lengths[r] <= INT64_MAX - total)) {
            ok = 0;
            error_set(err, "%s: /samples is inconsistent: response %lld has offset %lld and "
                           "length %lld in /samples/offsets and /samples/lengths, but "
                           "/samples/values holds %lld values",
                      path, (long long)r, (long long)starts[r], (long long)lengths[r],
                      (long long)n_values);
        } else if (out->minibatch[r] < 1 && out->minibatch[r] != -1) {
            ok = 0;
            error_set(err, "%s: /samples/minibatch: response %lld has mini-batch %lld (1-based, "
                           "or -1 for unknown)",
                      path, (long long)r, (long long)out->minibatch[r]);
        }
        out->offsets[r] = total;
        total += ok ? lengths[r] : 0;
    }
    if (ok) {
        out->offsets[n] = total;
        out->values = alloc_array(total, sizeof *out->values);
        ok = out->values != NULL;
        if (!ok)
            error_set(err, "%s: out of memory for %lld values of /samples/values", path,
                      (long long)total);
    }
    for (int64_t r = 0; ok && r < n; r++)
        if (h5u_read_rows(values, H5T_NATIVE_DOUBLE, 0, starts[r], lengths[r],
                          out->values + out->offsets[r]) != KPO_OK)
            ok = error_set(err, "%s: /samples/values is unreadable", path) == KPO_OK;
    free(starts);
    free(lengths);
    ok = close_all(path, ok, offsets, values, file, err);
    if (!ok) {
        runfile_samples_free(out);
        return KPO_ERR;
    }
    return KPO_OK;
}

void runfile_samples_free(runfile_samples *samples)
{
    free(samples->values);
    free(samples->offsets);
    free(samples->step);
    free(samples->minibatch);
    memset(samples, 0, sizeof *samples);
}

int runfile_read_minibatches(const char *path, runfile_minibatches *out, kpo_error *err)
{
    memset(out, 0, sizeof *out);
    hid_t file = runfile_open_hdf5(path, H5F_ACC_RDONLY, err);
    if (file < 0)
        return KPO_ERR;
    static const char name[] = "innovation/minibatch_accumulator";
    int64_t minibatches = 0, n = 0, rows = 0;
    hid_t steps = open_checked(file, path, "steps/step", H5T_INTEGER, 0, &n, err);
    hid_t d = steps >= 0 ? runfile_open_dataset(file, name) : -1;
    int ok = steps >= 0;
    if (ok && d >= 0) {
        if (h5u_read_int_attr(d, "minibatches", &minibatches) != KPO_OK ||
            minibatches < 1 || minibatches > MAX_MINIBATCHES)
            ok = error_set(err, "%s: /%s: attribute 'minibatches' is missing or out of range "
                                "(%lld; 1..%d)",
                           path, name, (long long)minibatches, MAX_MINIBATCHES) == KPO_OK;
        else
            ok = h5u_check_rows(d, path, name, H5T_FLOAT,
                                (hsize_t)minibatches * INNOV_STATS_FLAT_LEN, &rows, err) == KPO_OK;
        if (ok && rows < n)
            n = rows;
    }
    double *flat = NULL;
    if (ok && d >= 0 && n > 0) {
        size_t width = (size_t)minibatches * INNOV_STATS_FLAT_LEN;
        out->step = alloc_array(n, sizeof *out->step);
        out->stats = (uint64_t)n <= SIZE_MAX / sizeof *out->stats / (size_t)minibatches
                         ? alloc_array(n * minibatches, sizeof *out->stats)
                         : NULL;
        flat = (uint64_t)n <= SIZE_MAX / sizeof *flat / width ? alloc_array(n, width * sizeof *flat)
                                                              : NULL;
        ok = out->step && out->stats && flat;
        if (!ok)
            error_set(err, "%s: out of memory for %lld rows of /%s", path, (long long)n, name);
        else if (h5u_read_rows(steps, H5T_NATIVE_INT64, 0, 0, n, out->step) != KPO_OK ||
                 h5u_read_rows(d, H5T_NATIVE_DOUBLE, width, 0, n, flat) != KPO_OK)
            ok = error_set(err, "%s: /%s or /steps/step is unreadable", path, name) == KPO_OK;
        for (int64_t i = 0; ok && i < n * minibatches; i++)
            innov_stats_from_flat(&out->stats[i], flat + (size_t)i * INNOV_STATS_FLAT_LEN);
        out->n_rows = ok ? n : 0;
        out->n_minibatches = (int)minibatches;
    }
    free(flat);
    ok = close_all(path, ok, d, steps, file, err);
    if (!ok) {
        runfile_minibatches_free(out);
        return KPO_ERR;
    }
    return KPO_OK;
}

void runfile_minibatches_free(runfile_minibatches *table)
{
    free(table->step);
    free(table->stats);
    memset(table, 0, sizeof *table);
}

int runfile_read_config(const char *path, char **text, kpo_error *err)
{
    *text = NULL;
    hid_t file = runfile_open_hdf5(path, H5F_ACC_RDONLY, err);
    if (file < 0)
        return KPO_ERR;
    int status = h5u_read_string_attr(file, "config", text);
    H5Fclose(file);
    if (status != KPO_OK) {
        free(*text);
        *text = NULL;
        return error_set(err, "%s: the root attribute 'config' is missing or not a string", path);
    }
    return KPO_OK;
}
