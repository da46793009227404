/* src/learner: turning responses into updates.
 * defines:
 *   learner_step               one RL learner step over a rollout batch (this header)
 *   rl_batch                   a rollout batch as packed sequences
 *   advantage                  group-relative advantages
 *   objective, objective_token.h
 *       KPO / GRPO / GSPO objectives on the CPU
 *   objective_cuda, objective_cuda_check.c, objective_cuda_none.c
 *       the objective on the GPU
 *   minibatch_order            the order responses reach the learner's mini-batches
 *   learner_comm               the learner's reductions (single process; MPI in src/comm)
 *   sft, sft_eval.c            supervised warm start: examples, trainer, held-out evaluation
 *   sft_run                    kpo sft's pipeline: data, model, training, evaluation, saving */
/* One learner step over a rollout batch (algorithms.md §1-2, DESIGN.md
 * "One training step"): group advantages, old-policy log-probs, then M
 * optimizer steps, one per mini-batch.
 *
 * Every learner holds the whole batch. Mini-batch k is the contiguous
 * sequences [k N / M, (k+1) N / M); learner l trains on its l-th share of
 * each. Mini-batch membership therefore does not depend on how many
 * learners there are, so an L-rank update equals the 1-rank update on the
 * same data (up to float summation order). */
#ifndef KPO_LEARNER_LEARNER_STEP_H
#define KPO_LEARNER_LEARNER_STEP_H

#include <stdint.h>

#include "core/error.h"
#include "learner/learner_comm.h"
#include "learner/minibatch_order.h"
#include "learner/objective.h"
#include "learner/rl_batch.h"
#include "model/model_backend.h"

typedef struct learner_config {
    objective_config objective;
    int minibatches;      /* M optimizer steps per rollout batch */
    int group_size;       /* G responses per prompt */
    int norm_adv_by_std;  /* GRPO (1) or Dr. GRPO (0) */
    double adv_eps;       /* 1e-6 */
    int64_t log_samples;  /* raw log-ratio sequences kept per step for the run file, from
                             learner rank 0's share of every mini-batch: split, mini-batch k
                             (0-based) filling the kept total up to floor((k+1) S / M), so a
                             step still keeps S and, when S < M, the stale ones come first */
    int64_t micro_batch_tokens; /* a share's forward/backward runs over micro-batches of whole
                                   sequences of at most this many tokens (at least one
                                   sequence each), gradients summed; 0: the share at once */
    minibatch_order_kind minibatch_order; /* prompt (0): groups in rollout order; balanced:
                                             verl's balance_batch (docs/minibatch-order.md) */
    int balance_dp_size;  /* balanced: the verl data-parallel ranks mimicked; 0: the learners */
    int fail_nonfinite;   /* 0: skip an update whose loss or gradient norm is not finite, as
                             verl's actor does (counted); 1: end the step with an error */
} learner_config;

typedef struct learner_metrics {
    objective_metrics objective; /* over all mini-batches and learners */
    double entropy_sum;          /* sum over response tokens of the next-token entropy */
    double grad_norm_sum;        /* pre-clip norms of the updates taken */
    double grad_norm_max;
    int updates, skipped;        /* optimizer steps taken / skipped as non-finite */
    double old_logprob_seconds, learn_seconds;
    /* The filter's statistics of each mini-batch (all learners merged): the
     * first is on-policy (z is rounding noise), later ones increasingly
     * stale, and mixing such scales is itself a source of kurtosis. */
    int n_minibatches;
    innov_stats *minibatch_innovation; /* [n_minibatches] */
    /* Sampled raw log-ratios z = log pi - log pi_old, ragged (learner rank 0). */
    int64_t n_samples;
    double *sample_values;   /* [sample_offsets[n_samples]] */
    int64_t *sample_offsets; /* [n_samples + 1] */
    /* [n_samples] the mini-batch each came from, 1-based as the run file and
     * `kpo diag` number them: 1 is on-policy (z is 0 up to rounding), k is
     * k - 1 updates stale. 0 where learner_gradients was called directly. */
    int64_t *sample_minibatch;
} learner_metrics;

void learner_metrics_free(learner_metrics *metrics);

/* Fills batch->advantage, then trains the model behind b, which must hold
 * an optimizer and gradients (model_backend_cpu with opt and grads, or a
 * training GPU model; on CUDA comm's sum_floats must take device buffers:
 * comm_learner_nccl). metrics must be zero-initialised before the first
 * call (its samples are freed and replaced by each call;
 * learner_metrics_free at the end). */
int learner_step(model_backend *b, const learner_config *cfg, rl_batch *batch,
                 const learner_comm *comm, learner_metrics *metrics, kpo_error *err);

/* Per-response-token log-probs of a batch under the model behind b:
 * logp[k] for the k-th response token in batch order (also used by `kpo
 * logprobs`-style checks), a micro-batch of at most micro_batch_tokens
 * tokens at a time (0: all at once). entropy may be NULL. */
int learner_response_logprobs(model_backend *b, const rl_batch *batch, int64_t micro_batch_tokens,
                              double *logp, double *entropy, kpo_error *err);

/* Forward, objective and backward of one share of a mini-batch: the
 * backend's gradients (zeroed first) receive d loss / d theta, metrics the
 * objective's statistics, entropy_sum the response tokens' entropies. With
 * `samples` not NULL the share's first raw log-ratios are appended there
 * (until samples holds cfg->log_samples responses; their mini-batch is left
 * 0 for the caller to set). logp_old is in response-token order.
 * Runs micro-batches of cfg->micro_batch_tokens (the objective is a sum
 * over responses with the global normalizer, so they add up exactly). On
 * CUDA the log-probs, the objective and dlogp stay on the device
 * (learner/objective_cuda.h); on the CPU objective_compute runs. */
int learner_gradients(model_backend *b, const learner_config *cfg, const rl_batch *share,
                      const double *logp_old, objective_normalizer norm,
                      objective_metrics *metrics, double *entropy_sum, learner_metrics *samples,
                      kpo_error *err);

#endif
