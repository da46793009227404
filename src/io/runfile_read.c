/* Reading run files, for the offline tools (kpo diag, kpo filter). */
#include <stdlib.h>
#include <string.h>

#include "io/hdf5_util.h"
#include "io/runfile.h"
#include "io/runfile_internal.h"

static int read_int64_set(hid_t file, const char *path, int64_t n, int64_t *out)
{
    hid_t d = runfile_open_dataset(file, path);
    int status = (d >= 0 && h5u_rows(d) >= n) ? h5u_read_rows(d, H5T_NATIVE_INT64, 0, n, out)
                                              : KPO_ERR;
    if (d >= 0)
        H5Dclose(d);
    return status;
}

int runfile_read_innovation(const char *path, runfile_innovation *out, kpo_error *err)
{
    memset(out, 0, sizeof *out);
    hid_t file = runfile_open_hdf5(path, H5F_ACC_RDONLY, err);
    if (file < 0)
        return KPO_ERR;
    hid_t steps = runfile_open_dataset(file, "steps/step"), acc = runfile_open_dataset(file, "innovation/accumulator");
    int64_t n = (steps >= 0 && acc >= 0) ? h5u_rows(steps) : -1;
    int64_t n_acc = acc >= 0 ? h5u_rows(acc) : -1;
    if (n_acc >= 0 && n_acc < n)
        n = n_acc; /* tolerate a file cut off mid-step */
    double *flat = NULL;
    int ok = n >= 0;
    if (ok) {
        out->n_rows = n;
        out->step = malloc((size_t)(n ? n : 1) * sizeof *out->step);
        out->stats = malloc((size_t)(n ? n : 1) * sizeof *out->stats);
        flat = malloc((size_t)(n ? n : 1) * INNOV_STATS_FLAT_LEN * sizeof *flat);
        ok = out->step && out->stats && flat &&
             h5u_read_rows(steps, H5T_NATIVE_INT64, 0, n, out->step) == KPO_OK &&
             h5u_read_rows(acc, H5T_NATIVE_DOUBLE, 0, n, flat) == KPO_OK;
    }
    for (int64_t r = 0; ok && r < n; r++)
        innov_stats_from_flat(&out->stats[r], flat + r * INNOV_STATS_FLAT_LEN);
    free(flat);
    if (steps >= 0)
        H5Dclose(steps);
    if (acc >= 0)
        H5Dclose(acc);
    H5Fclose(file);
    if (!ok) {
        runfile_innovation_free(out);
        return error_set(err, "%s: cannot read /steps/step and /innovation/accumulator", path);
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
    hid_t offsets = runfile_open_dataset(file, "samples/offsets"), values = runfile_open_dataset(file, "samples/values");
    int64_t n = offsets >= 0 ? h5u_rows(offsets) : -1;
    int64_t n_values = values >= 0 ? h5u_rows(values) : -1;
    int ok = n >= 0 && n_values >= 0;
    int64_t *starts = NULL, *lengths = NULL;
    if (ok) {
        out->n_responses = n;
        starts = malloc((size_t)(n + 1) * sizeof *starts);
        lengths = malloc((size_t)(n + 1) * sizeof *lengths);
        out->offsets = malloc((size_t)(n + 1) * sizeof *out->offsets);
        out->step = malloc((size_t)(n + 1) * sizeof *out->step);
        out->minibatch = malloc((size_t)(n + 1) * sizeof *out->minibatch);
        ok = starts && lengths && out->offsets && out->step && out->minibatch &&
             read_int64_set(file, "samples/offsets", n, starts) == KPO_OK &&
             read_int64_set(file, "samples/lengths", n, lengths) == KPO_OK &&
             read_int64_set(file, "samples/step", n, out->step) == KPO_OK;
    }
    /* Files written before /samples/minibatch read as before, every
     * response's mini-batch unknown. */
    int tags_ok = 1;
    if (ok && H5Lexists(file, "samples/minibatch", H5P_DEFAULT) > 0)
        tags_ok = read_int64_set(file, "samples/minibatch", n, out->minibatch) == KPO_OK;
    else
        for (int64_t r = 0; ok && r < n; r++)
            out->minibatch[r] = -1;
    if (!tags_ok) {
        ok = 0;
        error_set(err, "%s: /samples/minibatch is unreadable or shorter than /samples/offsets "
                       "(%lld responses)", path, (long long)n);
    }
    /* Repack into one contiguous CSR array (responses are stored in order,
     * but a reader should not depend on it). */
    int64_t total = 0;
    for (int64_t r = 0; ok && r < n; r++) {
        /* compared by differences: starts + lengths, or the total, could overflow */
        ok = lengths[r] >= 0 && starts[r] >= 0 && starts[r] <= n_values &&
             lengths[r] <= n_values - starts[r] && lengths[r] <= INT64_MAX - total;
        out->offsets[r] = total;
        total += ok ? lengths[r] : 0;
    }
    if (ok) {
        out->offsets[n] = total;
        out->values = malloc((size_t)(total ? total : 1) * sizeof *out->values);
        ok = out->values != NULL;
    }
    for (int64_t r = 0; ok && r < n; r++)
        ok = h5u_read_rows(values, H5T_NATIVE_DOUBLE, starts[r], lengths[r],
                           out->values + out->offsets[r]) == KPO_OK;
    free(starts);
    free(lengths);
    if (offsets >= 0)
        H5Dclose(offsets);
    if (values >= 0)
        H5Dclose(values);
    H5Fclose(file);
    if (!ok) {
        runfile_samples_free(out);
        if (!tags_ok)
            return KPO_ERR;
        return error_set(err, "%s: /samples is missing or inconsistent (offsets, lengths, step, "
                              "values)", path);
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
    hid_t d = runfile_open_dataset(file, "innovation/minibatch_accumulator");
    hid_t steps = runfile_open_dataset(file, "steps/step");
    int ok = steps >= 0;
    int64_t minibatches = 0, n = 0;
    if (ok && d >= 0) {
        n = h5u_rows(steps);
        int64_t rows = h5u_rows(d);
        ok = n >= 0 && rows >= 0 && h5u_read_int_attr(d, "minibatches", &minibatches) == KPO_OK &&
             minibatches > 0;
        if (ok && rows < n)
            n = rows;
    }
    double *flat = NULL;
    if (ok && d >= 0 && n > 0) {
        size_t width = (size_t)minibatches * INNOV_STATS_FLAT_LEN;
        out->step = malloc((size_t)n * sizeof *out->step);
        out->stats = malloc((size_t)n * (size_t)minibatches * sizeof *out->stats);
        flat = malloc((size_t)n * width * sizeof *flat);
        ok = out->step && out->stats && flat &&
             h5u_read_rows(steps, H5T_NATIVE_INT64, 0, n, out->step) == KPO_OK &&
             h5u_read_rows(d, H5T_NATIVE_DOUBLE, 0, n, flat) == KPO_OK;
        for (int64_t i = 0; ok && i < n * minibatches; i++)
            innov_stats_from_flat(&out->stats[i], flat + (size_t)i * INNOV_STATS_FLAT_LEN);
        out->n_rows = ok ? n : 0;
        out->n_minibatches = (int)minibatches;
    }
    free(flat);
    if (d >= 0)
        H5Dclose(d);
    if (steps >= 0)
        H5Dclose(steps);
    H5Fclose(file);
    if (!ok) {
        runfile_minibatches_free(out);
        return error_set(err, "%s: /innovation/minibatch_accumulator is unreadable", path);
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
