/* The run-file API in a build without HDF5: every call explains why it
 * cannot work, so the rest of kpo still builds and runs. */
#include "io/runfile.h"

#include <string.h>

static int unavailable(const char *path, kpo_error *err)
{
    return error_set(err, "%s: kpo was built without HDF5 (install libhdf5-dev and rebuild)",
                     path ? path : "run file");
}

int runfile_create(const char *path, const char *config_text, runfile **out, kpo_error *err)
{
    (void)config_text;
    (void)out;
    return unavailable(path, err);
}

int runfile_open_append(const char *path, runfile **out, kpo_error *err)
{
    (void)out;
    return unavailable(path, err);
}

int runfile_append_step(runfile *rf, int64_t step, const innov_stats *stats,
                        const runfile_metric *metrics, size_t n_metrics, kpo_error *err)
{
    (void)rf, (void)step, (void)stats, (void)metrics, (void)n_metrics;
    return unavailable(NULL, err);
}

int runfile_append_samples(runfile *rf, int64_t step, const double *values,
                           const int64_t *offsets, int64_t n_responses, kpo_error *err)
{
    (void)rf, (void)step, (void)values, (void)offsets, (void)n_responses;
    return unavailable(NULL, err);
}

int runfile_append_minibatch_samples(runfile *rf, int64_t step, const double *values,
                                     const int64_t *offsets, const int64_t *minibatch,
                                     int64_t n_responses, kpo_error *err)
{
    (void)rf, (void)step, (void)values, (void)offsets, (void)minibatch, (void)n_responses;
    return unavailable(NULL, err);
}

int runfile_read_config(const char *path, char **text, kpo_error *err)
{
    *text = NULL;
    return unavailable(path, err);
}

int runfile_truncate(runfile *rf, int64_t last_step_kept, kpo_error *err)
{
    (void)rf, (void)last_step_kept;
    return unavailable(NULL, err);
}

int runfile_resume_at(runfile *rf, int64_t last_step, kpo_error *err)
{
    (void)rf, (void)last_step;
    return unavailable(NULL, err);
}

int runfile_close(runfile *rf, kpo_error *err)
{
    (void)rf, (void)err;
    return KPO_OK;
}

int runfile_read_innovation(const char *path, runfile_innovation *out, kpo_error *err)
{
    memset(out, 0, sizeof *out);
    return unavailable(path, err);
}

void runfile_innovation_free(runfile_innovation *table)
{
    memset(table, 0, sizeof *table);
}

int runfile_read_samples(const char *path, runfile_samples *out, kpo_error *err)
{
    memset(out, 0, sizeof *out);
    return unavailable(path, err);
}

void runfile_samples_free(runfile_samples *samples)
{
    memset(samples, 0, sizeof *samples);
}

int runfile_append_minibatch_stats(runfile *rf, int64_t step, const innov_stats *stats, int n,
                                   kpo_error *err)
{
    (void)rf, (void)step, (void)stats, (void)n;
    return unavailable(NULL, err);
}

int runfile_read_minibatches(const char *path, runfile_minibatches *out, kpo_error *err)
{
    memset(out, 0, sizeof *out);
    return unavailable(path, err);
}

void runfile_minibatches_free(runfile_minibatches *table)
{
    memset(table, 0, sizeof *table);
}
