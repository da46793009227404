/* `kpo filter --mode official`: the official code's float32 parallel filter
 * (filter/filter_official.h) beside kpo's exact recursion on the same
 * recorded log-ratios, padded as verl pads a batch. */
#ifndef KPO_CLI_FILTER_OFFICIAL_REPLAY_H
#define KPO_CLI_FILTER_OFFICIAL_REPLAY_H

#include <stdint.h>

#include "core/error.h"
#include "filter/filter.h"
#include "io/runfile.h"

typedef struct official_replay_options {
    int64_t width;      /* padded response length (verl: response_length); at least the longest */
    double tolerance;   /* |official - exact| that counts as diverged (log-ratio units) */
    int per_token;      /* print every response token (CSV) instead of the summary */
    int one_batch;      /* every response in one batch (plain-text input has no steps) */
} official_replay_options;

/* cfg's q, v, p0 and rho0 (as x0) drive both filters; its mode must be none.
 * Responses of one recorded step form one padded batch. */
int filter_official_replay(const filter_config *cfg, const runfile_samples *samples,
                           const official_replay_options *o, const char *source,
                           kpo_error *err);

#endif
