/* The per-step metrics of a run file (/metrics/<name>): the one table in C of
 * each metric's unit and meaning (docs/runfile.md's "Per-step metrics" table
 * says the same; tests/e2e/test_runfile_metrics_doc.py holds the two and
 * what `kpo train` writes together), and a reader of every /metrics series
 * for `kpo diag --metrics`. */
#ifndef KPO_IO_METRIC_UNITS_H
#define KPO_IO_METRIC_UNITS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* Which commands write a metric. */
enum {
    METRIC_WRITER_TRAIN = 1,    /* kpo train (record_step, src/train/train_loop.c) */
    METRIC_WRITER_SIMULATE = 2, /* kpo simulate (src/cli/cmd_simulate.c) */
};

typedef struct metric_unit {
    const char *name;    /* the dataset name under /metrics */
    const char *unit;    /* as docs/runfile.md's table spells it */
    const char *meaning; /* one line */
    unsigned writers;    /* METRIC_WRITER_* bits */
} metric_unit;

extern const metric_unit METRIC_UNITS[];
extern const size_t METRIC_UNITS_LEN;

/* The table's entry for name, or NULL for a metric it does not know. */
const metric_unit *metric_unit_find(const char *name);

/* Every /metrics series of a run file, over its complete rows. */
typedef struct metric_series {
    int64_t n_rows;
    int64_t *step;    /* [n_rows] /steps/step */
    size_t n_metrics;
    char **names;     /* [n_metrics]: the table's order, then unknown names alphabetically */
    double *values;   /* [n_metrics * n_rows]: metric m's row r at m * n_rows + r */
} metric_series;

/* Reads path's /steps/step and every float64 [n] dataset under /metrics
 * (a run without /metrics reads as no metrics); errors name the file and
 * the dataset. */
int metric_series_read(const char *path, metric_series *out, kpo_error *err);
void metric_series_free(metric_series *series);

#endif
