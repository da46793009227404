/* Writing the run file (runfile.h, docs/runfile.md): one row per step,
 * flushed; every HDF5 result checked, so a full disk ends the run with an
 * error naming the dataset instead of leaving rows of zeros behind. */
#include "io/runfile.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/build_info.h"
#include "core/file_util.h"
#include "io/hdf5_util.h"
#include "io/runfile_internal.h"

enum { STEP_CHUNK = 64, SAMPLE_CHUNK = 1 << 14, VALUE_CHUNK = 1 << 16 };

/* Per-step innovation scalars, in the order innovation_values() fills them. */
static const char *const INNOVATION_SCALARS[] = {
    "count",     "mean",       "variance",   "kurtosis",       "max_abs_delta",
    "clip_count", "clip_fraction", "mean_gain", "mean_sigma", "mean_threshold",
};
enum { N_INNOVATION_SCALARS = sizeof INNOVATION_SCALARS / sizeof INNOVATION_SCALARS[0] };

/* Per-response index sets under /samples. "minibatch" came later: a file
 * written before it lacks it, and everything below reads such a file as
 * before (trim_samples skips it, the first tagged append creates it). */
static const char *const SAMPLE_INDEX_SETS[] = {"offsets", "lengths", "step", "minibatch"};
enum { N_SAMPLE_SETS = 4, SAMPLE_MINIBATCH_SET = 3 };
static const char SAMPLE_MINIBATCH_MEANING[] =
    "1-based mini-batch of its step each response came from: 1 is on-policy (z = 0 up to "
    "rounding), k is k - 1 optimizer updates stale; -1: not recorded (kpo simulate, or a "
    "response appended without one)";

struct runfile {
    hid_t file;
    char path[4096];
    int64_t rows;
    int64_t last_step;
};

static void innovation_values(const innov_stats *s, double out[N_INNOVATION_SCALARS])
{
    out[0] = s->count;
    out[1] = s->count > 0 ? s->mean : NAN;
    out[2] = innov_stats_variance(s);
    out[3] = innov_stats_kurtosis(s);
    out[4] = s->count > 0 ? s->max_abs : NAN;
    out[5] = s->clip_count;
    out[6] = innov_stats_clip_fraction(s);
    out[7] = innov_stats_mean_gain(s);
    out[8] = innov_stats_mean_sigma(s);
    out[9] = innov_stats_mean_threshold(s);
}

/* The system error behind a failed HDF5 write (HDF5 leaves errno set by
 * the write(2) that failed, e.g. ENOSPC), for the message; "" if none. */
static const char *system_cause(char *out, size_t size)
{
    if (errno)
        snprintf(out, size, " (%s)", strerror(errno));
    else
        out[0] = '\0';
    return out;
}

static int fail(runfile *rf, kpo_error *err, const char *what)
{
    char cause[160];
    return error_set(err, "%s: HDF5 error while %s%s", rf->path, what,
                     system_cause(cause, sizeof cause));
}

/* A failed write of one dataset, named. */
static int fail_dataset(runfile *rf, kpo_error *err, const char *dataset, const char *what,
                        int64_t step)
{
    char cause[160];
    return error_set(err, "%s: /%s: HDF5 error while %s of step %lld%s; the run file holds "
                          "every step before it",
                     rf->path, dataset, what, (long long)step, system_cause(cause, sizeof cause));
}

hid_t runfile_open_dataset(hid_t file, const char *path)
{
    if (H5Lexists(file, path, H5P_DEFAULT) <= 0)
        return -1;
    return H5Dopen2(file, path, H5P_DEFAULT);
}

static int write_bin_edges(hid_t histogram)
{
    double edges[INNOV_HIST_BINS + 1];
    for (int k = 0; k <= INNOV_HIST_BINS; k++)
        edges[k] = innov_stats_bin_low(k + 1);
    hsize_t n = INNOV_HIST_BINS + 1;
    hid_t space = H5Screate_simple(1, &n, NULL);
    hid_t attr = space < 0 ? -1 : H5Acreate2(histogram, "bin_edges", H5T_IEEE_F64LE, space,
                                             H5P_DEFAULT, H5P_DEFAULT);
    int ok = attr >= 0 && H5Awrite(attr, H5T_NATIVE_DOUBLE, edges) >= 0;
    ok = h5u_close(attr) == KPO_OK && ok;
    ok = h5u_close(space) == KPO_OK && ok;
    if (!ok)
        return KPO_ERR;
    return h5u_write_string_attr(histogram, "layout",
                                 "rows: steps; column 0: delta/sigma below the first edge; "
                                 "columns 1..64: [edge k-1, edge k); column 65: at or above "
                                 "the last edge");
}

static int create_layout(hid_t file, const char *config_text)
{
    char build[512];
    build_info_describe(build, sizeof build);
    char created[64];
    time_t now = time(NULL);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    if (h5u_write_string_attr(file, "format", "kpo-run") != KPO_OK ||
        h5u_write_int_attr(file, "format_version", RUNFILE_FORMAT_VERSION) != KPO_OK ||
        h5u_write_string_attr(file, "config", config_text ? config_text : "") != KPO_OK ||
        h5u_write_string_attr(file, "build_info", build) != KPO_OK ||
        h5u_write_string_attr(file, "created", created) != KPO_OK)
        return KPO_ERR;

    hid_t groups[4] = {h5u_group(file, "steps"), h5u_group(file, "innovation"),
                       h5u_group(file, "metrics"), h5u_group(file, "samples")};
    int ok = groups[0] >= 0 && groups[1] >= 0 && groups[2] >= 0 && groups[3] >= 0;
    hid_t d;
    if (ok && (d = h5u_create_rows(groups[0], "step", H5T_STD_I64LE, 0, STEP_CHUNK)) >= 0)
        ok = h5u_close(d) == KPO_OK;
    else
        ok = 0;
    for (int k = 0; ok && k < N_INNOVATION_SCALARS; k++) {
        d = h5u_create_rows(groups[1], INNOVATION_SCALARS[k], H5T_IEEE_F64LE, 0, STEP_CHUNK);
        ok = d >= 0 && h5u_close(d) == KPO_OK;
    }
    if (ok && (d = h5u_create_rows(groups[1], "accumulator", H5T_IEEE_F64LE,
                                   INNOV_STATS_FLAT_LEN, STEP_CHUNK)) >= 0) {
        ok = h5u_write_string_attr(d, "layout",
                                   "count, mean, m2, m3, m4 (central sums of delta), max_abs, "
                                   "clip_count, gain_sum, sigma_sum, threshold_sum, "
                                   "threshold_count, then the histogram slots") == KPO_OK;
        ok = h5u_close(d) == KPO_OK && ok;
    } else {
        ok = 0;
    }
    if (ok && (d = h5u_create_rows(groups[1], "histogram", H5T_IEEE_F64LE, INNOV_HIST_SLOTS,
                                   STEP_CHUNK)) >= 0) {
        ok = write_bin_edges(d) == KPO_OK;
        ok = h5u_close(d) == KPO_OK && ok;
    } else {
        ok = 0;
    }
    if (ok && (d = h5u_create_rows(groups[3], "values", H5T_IEEE_F64LE, 0, VALUE_CHUNK)) >= 0)
        ok = h5u_close(d) == KPO_OK;
    else
        ok = 0;
    for (int k = 0; ok && k < N_SAMPLE_SETS; k++) {
        d = h5u_create_rows(groups[3], SAMPLE_INDEX_SETS[k], H5T_STD_I64LE, 0, SAMPLE_CHUNK);
        ok = d >= 0;
        if (ok && k == SAMPLE_MINIBATCH_SET)
            ok = h5u_write_string_attr(d, "meaning", SAMPLE_MINIBATCH_MEANING) == KPO_OK;
        ok = h5u_close(d) == KPO_OK && ok;
    }
    for (int k = 0; k < 4; k++)
        ok = h5u_close(groups[k]) == KPO_OK && ok;
    return ok ? KPO_OK : KPO_ERR;
}

int runfile_create(const char *path, const char *config_text, runfile **out, kpo_error *err)
{
    h5u_silence();
    if (file_exists(path))
        return error_set(err, "%s: already exists; refusing to overwrite a run file", path);
    runfile *rf = calloc(1, sizeof *rf);
    if (!rf)
        return error_set(err, "%s: out of memory", path);
    snprintf(rf->path, sizeof rf->path, "%s", path);
    rf->last_step = -1;
    rf->file = H5Fcreate(path, H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
    if (rf->file < 0) {
        error_set(err, "%s: cannot create the run file (%s)", path,
                  errno ? strerror(errno) : "HDF5 error");
        free(rf);
        return KPO_ERR;
    }
    if (create_layout(rf->file, config_text) != KPO_OK || H5Fflush(rf->file, H5F_SCOPE_GLOBAL) < 0) {
        error_set(err, "%s: HDF5 error while creating the run file layout", path);
        H5Fclose(rf->file);
        unlink(path); /* never leave a torn file behind */
        free(rf);
        return KPO_ERR;
    }
    *out = rf;
    return KPO_OK;
}

/* Names every per-step dataset so truncation and normalisation can visit
 * them all. */
typedef struct dataset_list {
    char names[256][160];
    int count;
} dataset_list;

static herr_t collect_dataset(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    (void)group;
    (void)info;
    dataset_list *list = data;
    if (list->count < 256)
        snprintf(list->names[list->count++], sizeof list->names[0], "%s", name);
    return 0;
}

static int list_group(hid_t file, const char *group_name, dataset_list *list)
{
    hid_t group = H5Gopen2(file, group_name, H5P_DEFAULT);
    if (group < 0)
        return KPO_ERR;
    dataset_list local = {.count = 0};
    herr_t status = H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_dataset, &local);
    if (h5u_close(group) != KPO_OK)
        status = -1;
    for (int k = 0; k < local.count && list->count < 256; k++)
        snprintf(list->names[list->count++], sizeof list->names[0], "%s/%s", group_name,
                 local.names[k]);
    return status < 0 ? KPO_ERR : KPO_OK;
}

/* Sets every dataset in the named groups to `rows`. */
static int resize_groups(runfile *rf, const char *const *groups, int n_groups, int64_t rows)
{
    dataset_list *list = calloc(1, sizeof *list);
    if (!list)
        return KPO_ERR;
    int status = KPO_OK;
    for (int g = 0; g < n_groups && status == KPO_OK; g++)
        status = list_group(rf->file, groups[g], list);
    for (int k = 0; k < list->count && status == KPO_OK; k++) {
        hid_t d = H5Dopen2(rf->file, list->names[k], H5P_DEFAULT);
        status = (d >= 0 && h5u_resize_rows(d, rows) == KPO_OK) ? KPO_OK : KPO_ERR;
        if (h5u_close(d) != KPO_OK)
            status = KPO_ERR;
    }
    free(list);
    return status;
}

/* Sets every per-step dataset (/steps, /innovation, /metrics) to `rows`. */
static int resize_step_datasets(runfile *rf, int64_t rows)
{
    static const char *const groups[] = {"steps", "innovation", "metrics"};
    return resize_groups(rf, groups, 3, rows);
}

/* Keeps the sampled responses whose step is <= last_step and that were
 * completely written (in every index set the file has). */
static int trim_samples(runfile *rf, int64_t last_step)
{
    hid_t sets[N_SAMPLE_SETS], values = runfile_open_dataset(rf->file, "samples/values");
    int64_t n = INT64_MAX;
    int ok = values >= 0;
    for (int k = 0; k < N_SAMPLE_SETS; k++) {
        char name[64];
        snprintf(name, sizeof name, "samples/%s", SAMPLE_INDEX_SETS[k]);
        sets[k] = runfile_open_dataset(rf->file, name);
        if (k == SAMPLE_MINIBATCH_SET && sets[k] < 0)
            continue; /* a file from before /samples/minibatch */
        int64_t rows = -1;
        ok = ok && sets[k] >= 0 &&
             h5u_check_rows(sets[k], rf->path, name, H5T_INTEGER, 0, &rows, NULL) == KPO_OK;
        if (rows >= 0 && rows < n)
            n = rows;
    }
    int64_t n_values = -1;
    ok = ok && h5u_check_rows(values, rf->path, "samples/values", H5T_FLOAT, 0, &n_values, NULL) ==
                   KPO_OK;
    int64_t *steps = NULL, *offsets = NULL, *lengths = NULL;
    if (ok && n > 0) {
        steps = malloc((size_t)n * sizeof *steps);
        offsets = malloc((size_t)n * sizeof *offsets);
        lengths = malloc((size_t)n * sizeof *lengths);
        ok = steps && offsets && lengths &&
             h5u_read_rows(sets[0], H5T_NATIVE_INT64, 0, 0, n, offsets) == KPO_OK &&
             h5u_read_rows(sets[1], H5T_NATIVE_INT64, 0, 0, n, lengths) == KPO_OK &&
             h5u_read_rows(sets[2], H5T_NATIVE_INT64, 0, 0, n, steps) == KPO_OK;
    }
    int64_t keep = 0, keep_values = 0;
    if (ok) {
        /* By differences: offsets + lengths could overflow. Responses are
         * stored in order, each after the one before. */
        while (keep < n && steps[keep] <= last_step && offsets[keep] >= keep_values &&
               offsets[keep] <= n_values && lengths[keep] >= 0 &&
               lengths[keep] <= n_values - offsets[keep]) {
            keep_values = offsets[keep] + lengths[keep];
            keep++;
        }
        for (int k = 0; k < N_SAMPLE_SETS && ok; k++)
            ok = sets[k] < 0 || h5u_resize_rows(sets[k], keep) == KPO_OK;
        ok = ok && h5u_resize_rows(values, keep_values) == KPO_OK;
    }
    free(steps);
    free(offsets);
    free(lengths);
    for (int k = 0; k < N_SAMPLE_SETS; k++)
        ok = h5u_close(sets[k]) == KPO_OK && ok;
    ok = h5u_close(values) == KPO_OK && ok;
    return ok ? KPO_OK : KPO_ERR;
}

/* /steps/step, checked to be int64 [n]; -1 with err naming it otherwise. */
static hid_t open_steps(runfile *rf, int64_t *rows, kpo_error *err)
{
    hid_t d = runfile_open_dataset(rf->file, "steps/step");
    if (d < 0) {
        error_set(err, "%s: /steps/step is missing", rf->path);
        return -1;
    }
    if (h5u_check_rows(d, rf->path, "steps/step", H5T_INTEGER, 0, rows, err) != KPO_OK) {
        H5Dclose(d);
        return -1;
    }
    return d;
}

static int read_last_step(runfile *rf, kpo_error *err)
{
    hid_t d = open_steps(rf, &rf->rows, err);
    if (d < 0)
        return KPO_ERR;
    rf->last_step = -1;
    int ok = rf->rows == 0 ||
             h5u_read_rows(d, H5T_NATIVE_INT64, 0, rf->rows - 1, 1, &rf->last_step) == KPO_OK;
    ok = h5u_close(d) == KPO_OK && ok;
    return ok ? KPO_OK : error_set(err, "%s: /steps/step is unreadable", rf->path);
}

static int check_format(hid_t file, const char *path, kpo_error *err)
{
    char *format = NULL;
    int64_t version = 0;
    int status = KPO_OK;
    if (h5u_read_string_attr(file, "format", &format) != KPO_OK || strcmp(format, "kpo-run") != 0)
        status = error_set(err, "%s: not a kpo run file (no format=\"kpo-run\" attribute)", path);
    else if (h5u_read_int_attr(file, "format_version", &version) != KPO_OK ||
             version != RUNFILE_FORMAT_VERSION)
        status = error_set(err, "%s: run file format version %lld is not supported (expected %d)",
                           path, (long long)version, RUNFILE_FORMAT_VERSION);
    else if (H5Lexists(file, "steps", H5P_DEFAULT) <= 0 ||
             H5Lexists(file, "steps/step", H5P_DEFAULT) <= 0 ||
             H5Lexists(file, "innovation", H5P_DEFAULT) <= 0 ||
             H5Lexists(file, "innovation/accumulator", H5P_DEFAULT) <= 0)
        status = error_set(err, "%s: run file lacks /steps/step or /innovation/accumulator", path);
    free(format);
    return status;
}

hid_t runfile_open_hdf5(const char *path, unsigned flags, kpo_error *err)
{
    h5u_silence();
    if (!file_exists(path)) {
        error_set(err, "%s: no such file", path);
        return -1;
    }
    if (H5Fis_hdf5(path) <= 0) {
        error_set(err, "%s: not an HDF5 file", path);
        return -1;
    }
    hid_t file = H5Fopen(path, flags, H5P_DEFAULT);
    if (file < 0) {
        error_set(err, "%s: HDF5 cannot open the file", path);
        return -1;
    }
    if (check_format(file, path, err) != KPO_OK) {
        H5Fclose(file);
        return -1;
    }
    return file;
}

int runfile_open_append(const char *path, runfile **out, kpo_error *err)
{
    hid_t file = runfile_open_hdf5(path, H5F_ACC_RDWR, err);
    if (file < 0)
        return KPO_ERR;
    runfile *rf = calloc(1, sizeof *rf);
    if (!rf) {
        H5Fclose(file);
        return error_set(err, "%s: out of memory", path);
    }
    rf->file = file;
    snprintf(rf->path, sizeof rf->path, "%s", path);
    /* /steps/step is written last in a row, so its length counts complete
     * rows; anything longer was cut off mid-step. */
    int status = read_last_step(rf, err);
    errno = 0;
    if (status == KPO_OK &&
        (resize_step_datasets(rf, rf->rows) != KPO_OK || trim_samples(rf, rf->last_step) != KPO_OK ||
         H5Fflush(file, H5F_SCOPE_GLOBAL) < 0))
        status = fail(rf, err, "restoring the last complete step");
    if (status != KPO_OK) {
        H5Fclose(file);
        free(rf);
        return KPO_ERR;
    }
    *out = rf;
    return KPO_OK;
}

static int valid_metric_name(const char *name)
{
    if (!name || !*name || strlen(name) > 120)
        return 0;
    for (const char *p = name; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_'))
            return 0;
    return 1;
}

/* Writes one row (cols values; 0: a 1-D dataset) of the dataset at path and
 * closes it: the close is where HDF5 may write the chunk, and can fail. */
static int write_row(runfile *rf, const char *path, hid_t memtype, hsize_t cols, int64_t row,
                     const void *data)
{
    hid_t d = runfile_open_dataset(rf->file, path);
    if (d < 0)
        return KPO_ERR;
    int ok = h5u_write_rows(d, memtype, cols, row, 1, data) == KPO_OK;
    ok = h5u_close(d) == KPO_OK && ok;
    return ok ? KPO_OK : KPO_ERR;
}

static int write_metric(runfile *rf, const runfile_metric *m, int64_t row)
{
    char path[200];
    snprintf(path, sizeof path, "metrics/%s", m->name);
    htri_t exists = H5Lexists(rf->file, path, H5P_DEFAULT);
    if (exists < 0)
        return KPO_ERR;
    if (exists == 0) {
        hid_t group = H5Gopen2(rf->file, "metrics", H5P_DEFAULT);
        hid_t d = group < 0 ? -1 : h5u_create_rows(group, m->name, H5T_IEEE_F64LE, 0, STEP_CHUNK);
        int ok = d >= 0;
        ok = h5u_close(group) == KPO_OK && ok;
        ok = h5u_close(d) == KPO_OK && ok; /* earlier rows read as NaN (the fill value) */
        if (!ok)
            return KPO_ERR;
    }
    return write_row(rf, path, H5T_NATIVE_DOUBLE, 0, row, &m->value);
}

int runfile_append_step(runfile *rf, int64_t step, const innov_stats *stats,
                        const runfile_metric *metrics, size_t n_metrics, kpo_error *err)
{
    if (step <= rf->last_step)
        return error_set(err, "%s: step %lld does not follow the last recorded step %lld",
                         rf->path, (long long)step, (long long)rf->last_step);
    for (size_t k = 0; k < n_metrics; k++)
        if (!valid_metric_name(metrics[k].name))
            return error_set(err, "%s: metric name '%s' must be letters, digits and '_'",
                             rf->path, metrics[k].name ? metrics[k].name : "(null)");
    errno = 0;
    const int64_t row = rf->rows;
    double scalars[N_INNOVATION_SCALARS];
    innovation_values(stats, scalars);
    for (int k = 0; k < N_INNOVATION_SCALARS; k++) {
        char path[64];
        snprintf(path, sizeof path, "innovation/%s", INNOVATION_SCALARS[k]);
        if (write_row(rf, path, H5T_NATIVE_DOUBLE, 0, row, &scalars[k]) != KPO_OK)
            return fail_dataset(rf, err, path, "writing the row", step);
    }
    double flat[INNOV_STATS_FLAT_LEN];
    innov_stats_to_flat(stats, flat);
    if (write_row(rf, "innovation/accumulator", H5T_NATIVE_DOUBLE, INNOV_STATS_FLAT_LEN, row,
                  flat) != KPO_OK)
        return fail_dataset(rf, err, "innovation/accumulator", "writing the row", step);
    if (write_row(rf, "innovation/histogram", H5T_NATIVE_DOUBLE, INNOV_HIST_SLOTS, row,
                  stats->hist) != KPO_OK)
        return fail_dataset(rf, err, "innovation/histogram", "writing the row", step);
    for (size_t k = 0; k < n_metrics; k++)
        if (write_metric(rf, &metrics[k], row) != KPO_OK) {
            char path[200];
            snprintf(path, sizeof path, "metrics/%s", metrics[k].name);
            return fail_dataset(rf, err, path, "writing the row", step);
        }
    /* Metrics not given this step read as NaN: grow them to the new row. */
    static const char *const metrics_group[] = {"metrics"};
    if (resize_groups(rf, metrics_group, 1, row + 1) != KPO_OK)
        return fail_dataset(rf, err, "metrics", "extending the metrics", step);
    if (write_row(rf, "steps/step", H5T_NATIVE_INT64, 0, row, &step) != KPO_OK)
        return fail_dataset(rf, err, "steps/step", "writing the row", step);
    if (H5Fflush(rf->file, H5F_SCOPE_GLOBAL) < 0)
        return fail_dataset(rf, err, "steps/step", "flushing the file after the row", step);
    rf->rows = row + 1;
    rf->last_step = step;
    return KPO_OK;
}

/* /samples/minibatch, created when a file from before it is appended to:
 * the responses already there are marked -1, not recorded. -1 on failure. */
static hid_t open_sample_minibatch(runfile *rf, int64_t existing)
{
    hid_t d = runfile_open_dataset(rf->file, "samples/minibatch");
    if (d >= 0)
        return d;
    hid_t group = H5Gopen2(rf->file, "samples", H5P_DEFAULT);
    d = group < 0 ? -1
                  : h5u_create_rows(group, SAMPLE_INDEX_SETS[SAMPLE_MINIBATCH_SET], H5T_STD_I64LE,
                                    0, SAMPLE_CHUNK);
    int ok = h5u_close(group) == KPO_OK;
    ok = ok && d >= 0 && h5u_write_string_attr(d, "meaning", SAMPLE_MINIBATCH_MEANING) == KPO_OK;
    int64_t *unknown = ok && existing > 0 ? malloc((size_t)existing * sizeof *unknown) : NULL;
    if (ok && existing > 0) {
        ok = unknown != NULL;
        for (int64_t r = 0; ok && r < existing; r++)
            unknown[r] = -1;
        ok = ok && h5u_write_rows(d, H5T_NATIVE_INT64, 0, 0, existing, unknown) == KPO_OK;
    }
    free(unknown);
    if (!ok && d >= 0) {
        H5Dclose(d);
        d = -1;
    }
    return d;
}

int runfile_append_samples(runfile *rf, int64_t step, const double *values,
                           const int64_t *offsets, int64_t n_responses, kpo_error *err)
{
    return runfile_append_minibatch_samples(rf, step, values, offsets, NULL, n_responses, err);
}

int runfile_append_minibatch_samples(runfile *rf, int64_t step, const double *values,
                                     const int64_t *offsets, const int64_t *minibatch,
                                     int64_t n_responses, kpo_error *err)
{
    if (step <= rf->last_step)
        return error_set(err,
                         "%s: samples of step %lld: the step does not follow the last "
                         "recorded step %lld",
                         rf->path, (long long)step, (long long)rf->last_step);
    if (n_responses <= 0)
        return KPO_OK;
    for (int64_t r = 0; minibatch && r < n_responses; r++)
        if (minibatch[r] < 1 && minibatch[r] != -1)
            return error_set(err, "%s: samples of step %lld: response %lld has mini-batch %lld "
                                  "(1-based, or -1 for unknown)",
                             rf->path, (long long)step, (long long)r, (long long)minibatch[r]);
    errno = 0;
    hid_t vals = runfile_open_dataset(rf->file, "samples/values");
    hid_t sets[N_SAMPLE_SETS];
    for (int k = 0; k < SAMPLE_MINIBATCH_SET; k++) {
        char name[64];
        snprintf(name, sizeof name, "samples/%s", SAMPLE_INDEX_SETS[k]);
        sets[k] = runfile_open_dataset(rf->file, name);
    }
    int ok = vals >= 0 && sets[0] >= 0 && sets[1] >= 0 && sets[2] >= 0;
    int64_t base = ok ? h5u_rows(vals) : -1, first = ok ? h5u_rows(sets[0]) : -1;
    sets[SAMPLE_MINIBATCH_SET] = ok && first >= 0 ? open_sample_minibatch(rf, first) : -1;
    ok = ok && sets[SAMPLE_MINIBATCH_SET] >= 0;
    int64_t *index = malloc(N_SAMPLE_SETS * (size_t)n_responses * sizeof *index);
    ok = ok && base >= 0 && first >= 0 && index;
    if (ok) {
        for (int64_t r = 0; r < n_responses; r++) {
            index[r] = base + offsets[r];                            /* offsets */
            index[n_responses + r] = offsets[r + 1] - offsets[r];    /* lengths */
            index[2 * n_responses + r] = step;                       /* step */
            index[3 * n_responses + r] = minibatch ? minibatch[r] : -1; /* minibatch */
        }
        /* Values first, then the index: a response is only visible once its
         * values are all written. */
        ok = h5u_write_rows(vals, H5T_NATIVE_DOUBLE, 0, base, offsets[n_responses], values) ==
             KPO_OK;
        for (int k = 0; k < N_SAMPLE_SETS && ok; k++)
            ok = h5u_write_rows(sets[k], H5T_NATIVE_INT64, 0, first, n_responses,
                                index + k * n_responses) == KPO_OK;
    }
    free(index);
    for (int k = 0; k < N_SAMPLE_SETS; k++)
        ok = h5u_close(sets[k]) == KPO_OK && ok;
    ok = h5u_close(vals) == KPO_OK && ok;
    return ok ? KPO_OK : fail_dataset(rf, err, "samples", "writing the log-ratio samples", step);
}

/* Mini-batches a file may record per step: far above any real run, low
 * enough that the row width cannot overflow. */
enum { MAX_MINIBATCHES = 1 << 16 };

int runfile_append_minibatch_stats(runfile *rf, int64_t step, const innov_stats *stats, int n,
                                   kpo_error *err)
{
    if (step <= rf->last_step)
        return error_set(err, "%s: mini-batch statistics of step %lld: the step does not follow "
                              "the last recorded step %lld",
                         rf->path, (long long)step, (long long)rf->last_step);
    if (n < 1)
        return KPO_OK;
    if (n > MAX_MINIBATCHES)
        return error_set(err, "%s: %d mini-batches at step %lld (at most %d)", rf->path, n,
                         (long long)step, MAX_MINIBATCHES);
    errno = 0;
    const hsize_t cols = (hsize_t)n * INNOV_STATS_FLAT_LEN;
    hid_t d = runfile_open_dataset(rf->file, "innovation/minibatch_accumulator");
    if (d < 0) {
        hid_t group = H5Gopen2(rf->file, "innovation", H5P_DEFAULT);
        d = group < 0 ? -1 : h5u_create_rows(group, "minibatch_accumulator", H5T_IEEE_F64LE,
                                             cols, STEP_CHUNK);
        int ok = d >= 0;
        ok = h5u_close(group) == KPO_OK && ok;
        if (!ok || h5u_write_int_attr(d, "minibatches", n) != KPO_OK) {
            h5u_close(d);
            return fail_dataset(rf, err, "innovation/minibatch_accumulator", "creating it", step);
        }
    }
    int64_t stored = 0;
    if (h5u_read_int_attr(d, "minibatches", &stored) != KPO_OK || stored != n) {
        H5Dclose(d);
        return error_set(err, "%s: /innovation/minibatch_accumulator: %d mini-batches at step "
                              "%lld, but the run recorded %lld",
                         rf->path, n, (long long)step, (long long)stored);
    }
    double *flat = malloc((size_t)cols * sizeof *flat);
    int ok = flat != NULL;
    for (int k = 0; ok && k < n; k++)
        innov_stats_to_flat(&stats[k], flat + (size_t)k * INNOV_STATS_FLAT_LEN);
    ok = ok && h5u_write_rows(d, H5T_NATIVE_DOUBLE, cols, rf->rows, 1, flat) == KPO_OK;
    free(flat);
    ok = h5u_close(d) == KPO_OK && ok;
    return ok ? KPO_OK
              : fail_dataset(rf, err, "innovation/minibatch_accumulator", "writing the row", step);
}

/* Reads all of /steps/step into a malloc'ed array (*rows entries). */
static int read_steps(runfile *rf, int64_t **steps, int64_t *rows, kpo_error *err)
{
    *steps = NULL;
    hid_t d = open_steps(rf, rows, err);
    if (d < 0)
        return KPO_ERR;
    *steps = malloc((size_t)(*rows > 0 ? *rows : 1) * sizeof **steps);
    int ok = *steps && h5u_read_rows(d, H5T_NATIVE_INT64, 0, 0, *rows, *steps) == KPO_OK;
    ok = h5u_close(d) == KPO_OK && ok;
    if (!ok) {
        free(*steps);
        *steps = NULL;
        return error_set(err, "%s: /steps/step is unreadable", rf->path);
    }
    return KPO_OK;
}

/* Cuts every record to its first `keep` rows (last step `last`). */
static int cut_back(runfile *rf, int64_t keep, int64_t last, int64_t last_step_kept,
                    kpo_error *err)
{
    errno = 0;
    if (resize_step_datasets(rf, keep) != KPO_OK || trim_samples(rf, last_step_kept) != KPO_OK ||
        H5Fflush(rf->file, H5F_SCOPE_GLOBAL) < 0)
        return fail(rf, err, "cutting the run back");
    rf->rows = keep;
    rf->last_step = last;
    return KPO_OK;
}

int runfile_truncate(runfile *rf, int64_t last_step_kept, kpo_error *err)
{
    int64_t *steps, rows;
    if (read_steps(rf, &steps, &rows, err) != KPO_OK)
        return KPO_ERR;
    /* Steps increase row by row: a row that does not (a 0 left where a
     * write failed) ends what is kept. */
    int64_t keep = 0;
    while (keep < rows && steps[keep] <= last_step_kept &&
           (keep == 0 || steps[keep] > steps[keep - 1]))
        keep++;
    int64_t last = keep > 0 ? steps[keep - 1] : -1;
    free(steps);
    return cut_back(rf, keep, last, last_step_kept, err);
}

int runfile_resume_at(runfile *rf, int64_t last_step, kpo_error *err)
{
    if (last_step < 0)
        return error_set(err, "%s: cannot resume after step %lld", rf->path,
                         (long long)last_step);
    int64_t *steps, rows;
    if (read_steps(rf, &steps, &rows, err) != KPO_OK)
        return KPO_ERR;
    /* Rows 0..S-1 must hold steps 1..S; anything after them is cut. */
    int64_t good = 0;
    while (good < rows && good < last_step && steps[good] == good + 1)
        good++;
    int status = KPO_OK;
    if (good < last_step && good < rows)
        status = error_set(err,
                           "%s: /steps/step row %lld holds step %lld where step %lld belongs; "
                           "the checkpoint is at step %lld, so the run file must record steps "
                           "1..%lld: refusing to resume (resume from an earlier checkpoint, or "
                           "start a new run)",
                           rf->path, (long long)good, (long long)steps[good],
                           (long long)(good + 1), (long long)last_step, (long long)last_step);
    else if (good < last_step)
        status = error_set(err,
                           "%s: /steps/step records steps 1..%lld only, but the checkpoint is "
                           "at step %lld: steps %lld..%lld are missing: refusing to resume "
                           "(resume from an earlier checkpoint, or start a new run)",
                           rf->path, (long long)good, (long long)last_step, (long long)(good + 1),
                           (long long)last_step);
    free(steps);
    if (status != KPO_OK)
        return status;
    return cut_back(rf, last_step, last_step, last_step, err);
}

int runfile_close(runfile *rf, kpo_error *err)
{
    if (!rf)
        return KPO_OK;
    errno = 0;
    herr_t status = H5Fclose(rf->file);
    int result = status < 0 ? fail(rf, err, "closing") : KPO_OK;
    free(rf);
    return result;
}
