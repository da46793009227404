/* The per-step metrics' units and meanings, and the reader of a run file's
 * /metrics series (kpo diag --metrics). */
#include "io/metric_units.h"

#include <stdlib.h>
#include <string.h>

#include "kpo_config.h"

#define T METRIC_WRITER_TRAIN
#define S METRIC_WRITER_SIMULATE

/* Units exactly as docs/runfile.md's "Per-step metrics" table spells them. */
const metric_unit METRIC_UNITS[] = {
    {"reward_mean", "reward", "mean reward of the step's responses", T},
    {"accuracy", "fraction", "responses judged correct", T},
    {"groups_with_signal", "fraction", "prompts whose responses do not all have the same reward",
     T},
    {"response_length_mean", "tokens", "mean response length", T | S},
    {"response_length_max", "tokens", "longest response", T},
    {"stopped_fraction", "fraction", "responses that ended with a stop token", T},
    {"rollout_slot_occupancy", "fraction",
     "mean fraction of KV-cache slots a rollout decode step fed", T},
    {"entropy_mean", "nats / token", "mean next-token entropy over the trained response tokens",
     T},
    {"loss", "objective", "the objective's loss summed over the mini-batches taken", T},
    {"objective_clip_fraction", "fraction of tokens", "tokens whose surrogate was clipped", T},
    {"approx_kl", "nats / token", "-mean z_t, z_t = log pi - log pi_old", T},
    {"ratio_raw_mean", "ratio", "mean of exp(z_t), the raw token ratio", T | S},
    {"ratio_raw_min", "ratio", "least exp(z_t)", T | S},
    {"ratio_raw_max", "ratio", "largest exp(z_t)", T | S},
    {"ratio_filtered_mean", "ratio", "mean of exp(l_t), the ratio the objective used", T | S},
    {"ratio_filtered_min", "ratio", "least exp(l_t)", T | S},
    {"ratio_filtered_max", "ratio", "largest exp(l_t)", T | S},
    {"grad_norm_mean", "L2 norm", "mean global gradient norm before clipping", T},
    {"grad_norm_max", "L2 norm", "largest global gradient norm before clipping", T},
    {"updates", "count", "optimizer steps taken", T},
    {"skipped_updates", "count", "mini-batches skipped for a non-finite loss or gradient", T},
    {"lr", "learning rate", "the schedule's rate at the latest optimizer step", T},
    {"tokens_response", "tokens", "response tokens sampled in the step", T},
    {"tokens_total", "tokens", "prompt and response tokens of the step's batch", T},
    {"time_rollout", "s", "sampling and scoring, the slowest rollout rank", T},
    {"time_old_logprobs", "s", "old-policy log-probs of rank 0's shares", T},
    {"time_learn", "s", "rank 0's mini-batch updates", T},
    {"time_sync", "s", "the weight broadcast to the rollout ranks", T},
    {"time_step", "s", "the whole step on rank 0, from rollout to sync", T},
    {"tokens_per_second", "tokens / s", "tokens_response / time_step", T},
    {"gpu_memory_peak_gib", "GiB (2^30 bytes)", "most memory in use on rank 0's GPU (0 on the cpu)",
     T},
    {"prompts_skipped_long", "count", "training prompts dropped for exceeding max_prompt_tokens",
     T},
    {"tokens", "tokens", "log-ratios simulated in the step", S},
    {"responses", "count", "responses simulated in the step", S},
};
const size_t METRIC_UNITS_LEN = sizeof METRIC_UNITS / sizeof METRIC_UNITS[0];

#undef T
#undef S

const metric_unit *metric_unit_find(const char *name)
{
    for (size_t k = 0; k < METRIC_UNITS_LEN; k++)
        if (strcmp(METRIC_UNITS[k].name, name) == 0)
            return &METRIC_UNITS[k];
    return NULL;
}

void metric_series_free(metric_series *series)
{
    for (size_t m = 0; series->names && m < series->n_metrics; m++)
        free(series->names[m]);
    free(series->names);
    free(series->step);
    free(series->values);
    memset(series, 0, sizeof *series);
}

#if KPO_HAVE_HDF5

#include "io/hdf5_util.h"
#include "io/runfile_internal.h"

/* Where name sorts: its index in the table, unknown names after all of them. */
static size_t table_rank(const char *name)
{
    const metric_unit *u = metric_unit_find(name);
    return u ? (size_t)(u - METRIC_UNITS) : METRIC_UNITS_LEN;
}

static int compare_names(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    size_t rx = table_rank(x), ry = table_rank(y);
    if (rx != ry)
        return rx < ry ? -1 : 1;
    return strcmp(x, y);
}

static herr_t collect_name(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    (void)group, (void)info;
    metric_series *s = data;
    char **grown = realloc(s->names, (s->n_metrics + 1) * sizeof *grown);
    if (!grown)
        return -1;
    s->names = grown;
    s->names[s->n_metrics] = strdup(name);
    if (!s->names[s->n_metrics])
        return -1;
    s->n_metrics++;
    return 0;
}

static int read_metrics(hid_t file, const char *path, metric_series *out, kpo_error *err)
{
    hid_t steps = runfile_open_dataset(file, "steps/step");
    int64_t n = -1;
    if (steps < 0)
        return error_set(err, "%s: no /steps/step", path);
    int status = h5u_check_rows(steps, path, "/steps/step", H5T_INTEGER, 0, &n, err);
    if (status == KPO_OK) {
        out->n_rows = n;
        out->step = malloc((size_t)(n ? n : 1) * sizeof *out->step);
        status = out->step && h5u_read_rows(steps, H5T_NATIVE_INT64, 0, 0, n, out->step) == KPO_OK
                     ? KPO_OK
                     : error_set(err, "%s: cannot read /steps/step", path);
    }
    H5Dclose(steps);
    if (status != KPO_OK || H5Lexists(file, "metrics", H5P_DEFAULT) <= 0)
        return status;
    hid_t group = H5Gopen2(file, "metrics", H5P_DEFAULT);
    if (group < 0)
        return error_set(err, "%s: /metrics is not a group", path);
    if (H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_name, out) < 0)
        status = error_set(err, "%s: cannot list /metrics", path);
    if (status == KPO_OK && out->n_metrics > 1)
        qsort(out->names, out->n_metrics, sizeof *out->names, compare_names);
    if (status == KPO_OK) {
        out->values = malloc((out->n_metrics ? out->n_metrics : 1) * (size_t)(n ? n : 1) *
                             sizeof *out->values);
        if (!out->values)
            status = error_set(err, "%s: out of memory", path);
    }
    for (size_t m = 0; status == KPO_OK && m < out->n_metrics; m++) {
        char where[512];
        snprintf(where, sizeof where, "/metrics/%s", out->names[m]);
        hid_t d = H5Dopen2(group, out->names[m], H5P_DEFAULT);
        int64_t rows = -1;
        if (d < 0) {
            status = error_set(err, "%s: %s is not a dataset", path, where);
            break;
        }
        status = h5u_check_rows(d, path, where, H5T_FLOAT, 0, &rows, err);
        /* A row is complete once /steps/step holds it (written last). */
        if (status == KPO_OK && rows < n)
            status = error_set(err, "%s: %s holds %lld rows, /steps/step %lld", path, where,
                               (long long)rows, (long long)n);
        if (status == KPO_OK &&
            h5u_read_rows(d, H5T_NATIVE_DOUBLE, 0, 0, n, out->values + m * (size_t)n) != KPO_OK)
            status = error_set(err, "%s: cannot read %s", path, where);
        H5Dclose(d);
    }
    H5Gclose(group);
    return status;
}

int metric_series_read(const char *path, metric_series *out, kpo_error *err)
{
    memset(out, 0, sizeof *out);
    hid_t file = runfile_open_hdf5(path, H5F_ACC_RDONLY, err);
    if (file < 0)
        return KPO_ERR;
    int status = read_metrics(file, path, out, err);
    H5Fclose(file);
    if (status != KPO_OK)
        metric_series_free(out);
    return status;
}

#else

int metric_series_read(const char *path, metric_series *out, kpo_error *err)
{
    memset(out, 0, sizeof *out);
    return error_set(err, "%s: kpo was built without HDF5 (install libhdf5-dev and rebuild)",
                     path);
}

#endif
