/* run.dump_responses: a sample of each training step's responses, as
 * readable text, appended to RUN/responses.jsonl by world rank 0 once the
 * step's batch is gathered (docs/train.md, "Reading the responses"). */
#ifndef KPO_TRAIN_TRAIN_DUMP_H
#define KPO_TRAIN_TRAIN_DUMP_H

#include <stdint.h>

#include "core/error.h"
#include "learner/rl_batch.h"
#include "train/train_config.h"
#include "train/train_data.h"

/* Appends min(s->dump_responses, batch->n) responses of step (spread
 * evenly over the batch: response i * n / N) to s->out_dir/responses.jsonl;
 * nothing when s->dump_responses is 0. Lines of step or later already in
 * the file (a resumed run repeating steps, or a line cut short by a crash)
 * are dropped first, so after a resume each step appears once. */
int train_dump_step(train_data *data, const train_settings *s, int64_t step,
                    const rl_batch *batch, kpo_error *err);

/* The file name inside run.out. */
#define TRAIN_DUMP_FILE "responses.jsonl"

/* Keeps only the complete lines of path whose step is below `step`
 * (temporary file, then renamed over path). Exposed for tests. */
int train_dump_truncate(const char *path, int64_t step, kpo_error *err);

#endif
