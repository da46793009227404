/* src/train: kpo train.
 * defines:
 *   train_loop                 the RL loop over MPI ranks (this header)
 *   train_config               the configuration schema and its settings
 *   train_data                 the training prompts and the tokenizer
 *   train_rollout              the rollout role of one step
 *   train_device               run.device: backend, communicators, weight sync
 *   train_dump                 run.dump_responses
 *   run_lock                   one trainer per run directory */
/* `kpo train`: the RL loop over MPI ranks (DESIGN.md "One training step").
 * Rollout ranks sample and score; every rank receives the batch; learners
 * update; learner rank 0 broadcasts weights, records the step and writes
 * checkpoints. SIGTERM or SIGUSR1 checkpoints at the end of the step and
 * ends the job with status 0 (Slurm preemption). */
#ifndef KPO_TRAIN_TRAIN_LOOP_H
#define KPO_TRAIN_TRAIN_LOOP_H

#include <mpi.h>

#include "core/config.h"
#include "core/error.h"
#include "train/train_config.h"

typedef struct train_outcome {
    int64_t last_step;   /* the last step completed */
    int preempted;       /* stopped early by a signal, after a checkpoint */
    int startup_failed;  /* failed before the first step, on every rank alike */
    int report;          /* this rank prints the start-up error */
} train_outcome;

/* Start-up failures are agreed by all ranks (outcome->startup_failed): end
 * normally. A later failure is local to the rank that saw it: the caller
 * aborts every rank (comm_abort_all) rather than let the others wait. */
int train_run(const train_settings *s, const config *cfg, int resume, MPI_Comm world,
              train_outcome *outcome, kpo_error *err);

/* Installs the SIGTERM/SIGUSR1 handler that asks for a checkpoint-and-exit. */
void train_install_signal_handlers(void);

#endif
