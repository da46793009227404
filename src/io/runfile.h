/* src/io: what kpo writes and reads back.
 * defines:
 *   runfile, runfile_read.c, runfile_unavailable.c
 *       the HDF5 run file (this header)
 *   runfile_internal.h         what the run-file writer and reader share
 *   runfile_config             a resumed run's config changes in its run file
 *   metric_units               every per-step metric's unit and meaning
 *   evalfile, evalfile_sniff.c, evalfile_unavailable.c
 *       the HDF5 eval file
 *   hdf5_util                  growable 1-D and 2-D HDF5 datasets
 *   checkpoint                 training checkpoints, published atomically
 *   logratio_text              plain-text log-ratio input for kpo filter */
/* The run file: one HDF5 file per training run, appended one row per step
 * and flushed after each, so a run killed at any point between steps leaves
 * a readable file holding every step it finished.
 *
 * Layout (docs/runfile.md has the full list):
 *   /                      attrs: format="kpo-run", format_version, config, build_info
 *   /steps/step            int64   [n_steps]   the training step of each row
 *   /innovation/<stat>     float64 [n_steps]   count, mean, variance, kurtosis,
 *                                              max_abs_delta, clip_count, clip_fraction,
 *                                              mean_gain, mean_sigma, mean_threshold
 *   /innovation/accumulator float64 [n_steps, INNOV_STATS_FLAT_LEN]  mergeable raw form
 *   /innovation/histogram  float64 [n_steps, INNOV_HIST_SLOTS]  attr bin_edges
 *   /innovation/minibatch_accumulator float64 [n_steps, M * INNOV_STATS_FLAT_LEN]
 *                          the accumulator of each of the step's M mini-batches
 *   /metrics/<name>        float64 [n_steps]   any other per-step scalar (NaN if absent)
 *   /samples/values        float64 [n_tokens]  raw log-ratios of sampled responses
 *   /samples/offsets       int64   [n_responses] start of each response in values
 *   /samples/lengths       int64   [n_responses]
 *   /samples/step          int64   [n_responses] the step each response came from
 *   /samples/minibatch     int64   [n_responses] its mini-batch, 1-based (1: on-policy);
 *                                              -1 unknown; absent in older files */
#ifndef KPO_IO_RUNFILE_H
#define KPO_IO_RUNFILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "filter/innov_stats.h"

#define RUNFILE_FORMAT_VERSION 1

typedef struct runfile runfile;

typedef struct runfile_metric {
    const char *name; /* dataset name under /metrics: letters, digits, '_' */
    double value;
} runfile_metric;

/* Creates a new run file; refuses to overwrite an existing one. */
int runfile_create(const char *path, const char *config_text, runfile **out, kpo_error *err);

/* Opens an existing run file for appending. A file cut off mid-step (some
 * datasets one row longer than others) is first cut back to its last
 * complete step. */
int runfile_open_append(const char *path, runfile **out, kpo_error *err);


/* Appends one row and flushes the file. Steps must increase. */
int runfile_append_step(runfile *rf, int64_t step, const innov_stats *stats,
                        const runfile_metric *metrics, size_t n_metrics, kpo_error *err);

/* Appends sampled raw log-ratio sequences (ragged: offsets has n_responses+1
 * entries into values) for step, each tagged with the 1-based mini-batch it
 * came from (minibatch[n_responses]; NULL or -1: unknown); call before
 * runfile_append_step of that step, which flushes them. */
int runfile_append_minibatch_samples(runfile *rf, int64_t step, const double *values,
                                     const int64_t *offsets, const int64_t *minibatch,
                                     int64_t n_responses, kpo_error *err);

/* The same without mini-batches (kpo simulate): they read as -1. */
int runfile_append_samples(runfile *rf, int64_t step, const double *values,
                           const int64_t *offsets, int64_t n_responses, kpo_error *err);

/* Records the accumulators of the step's mini-batches; call before
 * runfile_append_step of that step. n must stay the same over a run. */
int runfile_append_minibatch_stats(runfile *rf, int64_t step, const innov_stats *stats, int n,
                                   kpo_error *err);

/* Cuts every record back so that no step after last_step_kept remains (for
 * resume from a checkpoint taken at last_step_kept). Flushes. */
int runfile_truncate(runfile *rf, int64_t last_step_kept, kpo_error *err);

/* For kpo train --resume from a checkpoint at step last_step: checks that
 * /steps/step records exactly steps 1..last_step in its first rows and
 * refuses (err names the file and what is missing or out of place, nothing
 * changed) otherwise; then cuts every record after that step. Flushes. */
int runfile_resume_at(runfile *rf, int64_t last_step, kpo_error *err);

int runfile_close(runfile *rf, kpo_error *err);

/* --- Reading, for the offline tools ----------------------------------- */

/* The innovation table of a run, one entry per row. */
typedef struct runfile_innovation {
    int64_t n_rows;
    int64_t *step;           /* [n_rows] */
    innov_stats *stats;      /* [n_rows] reconstructed accumulators */
} runfile_innovation;

int runfile_read_innovation(const char *path, runfile_innovation *out, kpo_error *err);
void runfile_innovation_free(runfile_innovation *table);

/* Per-mini-batch accumulators: stats[row * n_minibatches + k]. A run
 * without them reads as n_rows = 0. */
typedef struct runfile_minibatches {
    int64_t n_rows;
    int n_minibatches;
    int64_t *step;      /* [n_rows] */
    innov_stats *stats; /* [n_rows * n_minibatches] */
} runfile_minibatches;

int runfile_read_minibatches(const char *path, runfile_minibatches *out, kpo_error *err);
void runfile_minibatches_free(runfile_minibatches *table);

/* The recorded raw log-ratio samples: offsets has n_responses + 1 entries. */
typedef struct runfile_samples {
    int64_t n_responses;
    double *values;    /* [offsets[n_responses]] */
    int64_t *offsets;  /* [n_responses + 1] */
    int64_t *step;     /* [n_responses] */
    int64_t *minibatch; /* [n_responses] 1-based mini-batch (1: on-policy), -1 unknown (a
                           file without /samples/minibatch); NULL from logratio_text_read */
} runfile_samples;

int runfile_read_samples(const char *path, runfile_samples *out, kpo_error *err);
void runfile_samples_free(runfile_samples *samples);

/* The root attribute `config`: the resolved configuration the run was
 * written with (kpo train: config_dump's INI text); malloc'ed into *text. */
int runfile_read_config(const char *path, char **text, kpo_error *err);

#endif
