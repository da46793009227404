/* One learner step over a rollout batch (learner_step.h): advantages,
 * old-policy log-probs, then one optimizer step per mini-batch. */
#include "learner/learner_step.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/timer.h"
#include "learner/advantage.h"
#include "learner/objective_cuda.h"

/* Sequences of mini-batch k that learner `rank` of `size` trains on. */
static void share_of(int64_t n, int minibatches, int k, int rank, int size, int64_t *first,
                     int64_t *count)
{
    int64_t mb_first = (int64_t)k * n / minibatches, mb_end = (int64_t)(k + 1) * n / minibatches;
    int64_t mb_n = mb_end - mb_first;
    *first = mb_first + (int64_t)rank * mb_n / size;
    *count = mb_first + (int64_t)(rank + 1) * mb_n / size - *first;
}

/* targets[p] = next token where position p predicts a response token. */
static void response_targets(const rl_batch *b, int32_t *targets)
{
    for (int64_t i = 0; i < b->n; i++) {
        int64_t start = b->seq_offsets[i], end = b->seq_offsets[i + 1];
        for (int64_t p = start; p < end; p++)
            targets[p] = (p >= start + b->prompt_len[i] - 1 && p < end - 1) ? b->tokens[p + 1] : -1;
    }
}

/* How many sequences from `first` form the next micro-batch: whole
 * sequences while their tokens fit `budget` tokens (always at least one;
 * budget <= 0: all the rest). Micro-batches bound what one forward keeps
 * for its backward (the GPU's memory plan); gradients add up across them. */
static int64_t micro_batch_count(const rl_batch *b, int64_t first, int64_t budget)
{
    if (budget <= 0)
        return b->n - first;
    int64_t count = 1;
    while (first + count < b->n &&
           b->seq_offsets[first + count + 1] - b->seq_offsets[first] <= budget)
        count++;
    return count;
}

/* Runs the forward pass of b and leaves the backend ready for backward;
 * logp and entropy (response-token order) are filled when not NULL. b's
 * arrays must outlive the backward. */
static int forward_batch(model_backend *be, const rl_batch *b, int32_t *targets, double *logp,
                         double *entropy, kpo_error *err)
{
    const int64_t T = b->seq_offsets[b->n];
    model_batch mb = {b->tokens, T, b->seq_offsets, b->n};
    float *lp = malloc((size_t)T * sizeof *lp), *ent = malloc((size_t)T * sizeof *ent);
    int status = (lp && ent) ? KPO_OK : error_set(err, "learner: out of memory");
    if (status == KPO_OK) {
        response_targets(b, targets);
        status = model_backend_forward(be, &mb, targets, lp, ent, err);
    }
    if (status == KPO_OK) {
        int64_t k = 0;
        for (int64_t p = 0; p < T; p++)
            if (targets[p] >= 0) {
                if (logp)
                    logp[k] = lp[p];
                if (entropy)
                    entropy[k] = ent[p];
                k++;
            }
    }
    free(lp);
    free(ent);
    return status;
}

/* One micro-batch's old-policy log-probs. */
static int micro_batch_logprobs(model_backend *b, const rl_batch *mb, double *logp,
                                double *entropy, kpo_error *err)
{
    int32_t *targets = malloc((size_t)mb->seq_offsets[mb->n] * sizeof *targets);
    if (!targets)
        return error_set(err, "learner: out of memory");
    int status = forward_batch(b, mb, targets, logp, entropy, err);
    model_backend_drop_acts(b); /* no backward follows */
    free(targets);
    return status;
}

int learner_response_logprobs(model_backend *b, const rl_batch *batch, int64_t micro_batch_tokens,
                              double *logp, double *entropy, kpo_error *err)
{
    int status = KPO_OK;
    int64_t done_tokens = 0; /* response tokens written so far */
    for (int64_t first = 0; first < batch->n && status == KPO_OK;) {
        int64_t count = micro_batch_count(batch, first, micro_batch_tokens);
        rl_batch mb;
        status = rl_batch_slice(batch, first, count, &mb, err);
        if (status != KPO_OK)
            break;
        status = micro_batch_logprobs(b, &mb, logp + done_tokens,
                                      entropy ? entropy + done_tokens : NULL, err);
        done_tokens += rl_batch_response_tokens(&mb);
        rl_batch_free(&mb);
        first += count;
    }
    return status;
}

static void samples_free(learner_metrics *metrics)
{
    free(metrics->sample_values);
    free(metrics->sample_offsets);
    free(metrics->sample_minibatch);
    metrics->sample_values = NULL;
    metrics->sample_offsets = NULL;
    metrics->sample_minibatch = NULL;
    metrics->n_samples = 0;
}

void learner_metrics_free(learner_metrics *metrics)
{
    free(metrics->minibatch_innovation);
    metrics->minibatch_innovation = NULL;
    metrics->n_minibatches = 0;
    samples_free(metrics);
}

/* Appends z = logp - logp_old of a micro-batch's first responses to the
 * kept samples, until cfg->log_samples responses are kept, with mini-batch
 * 0 (learner_step tags them). offsets are the micro-batch's response-token
 * offsets. */
static int append_samples(const learner_config *cfg, const int64_t *offsets, int64_t n_responses,
                          const double *logp, const double *logp_old, learner_metrics *lm,
                          kpo_error *err)
{
    int64_t room = cfg->log_samples - lm->n_samples;
    int64_t n = room < n_responses ? room : n_responses;
    if (n <= 0)
        return KPO_OK;
    int64_t have = lm->n_samples ? lm->sample_offsets[lm->n_samples] : 0;
    int64_t *o = realloc(lm->sample_offsets, (size_t)(lm->n_samples + n + 1) * sizeof *o);
    if (o)
        lm->sample_offsets = o;
    int64_t *mb = o ? realloc(lm->sample_minibatch, (size_t)(lm->n_samples + n) * sizeof *mb)
                    : NULL;
    if (mb)
        lm->sample_minibatch = mb;
    double *v = mb ? realloc(lm->sample_values, (size_t)(have + offsets[n] + 1) * sizeof *v)
                   : NULL;
    if (!v) {
        samples_free(lm);
        return error_set(err, "learner: out of memory for log-ratio samples");
    }
    lm->sample_values = v;
    lm->sample_offsets[0] = 0;
    for (int64_t r = 0; r < n; r++) {
        lm->sample_offsets[lm->n_samples + r + 1] = have + offsets[r + 1];
        lm->sample_minibatch[lm->n_samples + r] = 0;
    }
    for (int64_t k = 0; k < offsets[n]; k++)
        lm->sample_values[have + k] = logp[k] - logp_old[k];
    lm->n_samples += n;
    return KPO_OK;
}

/* offsets [n + 1]: where each response starts among the micro-batch's
 * response tokens. */
static void response_offsets(const rl_batch *mb, int64_t *offsets)
{
    offsets[0] = 0;
    for (int64_t i = 0; i < mb->n; i++)
        offsets[i + 1] =
            offsets[i] + (mb->seq_offsets[i + 1] - mb->seq_offsets[i] - mb->prompt_len[i]);
}

/* How many response tokens of a micro-batch of n_responses (offsets) the
 * run file's samples still take: 0 when samples is NULL or full. */
static int64_t sample_tokens_wanted(const learner_config *cfg, const int64_t *offsets,
                                    int64_t n_responses, const learner_metrics *samples)
{
    if (!samples)
        return 0;
    int64_t room = cfg->log_samples - samples->n_samples;
    int64_t n = room < n_responses ? room : n_responses;
    return n > 0 ? offsets[n] : 0;
}

/* micro_batch_gradients on CUDA: log-probs, the objective and dlogp stay
 * on the device (objective_cuda.h); only the metrics (and the samples'
 * log-probs) come back. Response i's tokens are the packed rows from
 * seq_offsets[i] + prompt_len[i] - 1 on (response_targets). */
static int micro_batch_gradients_device(model_backend *b, const learner_config *cfg,
                                        const rl_batch *mb, const double *logp_old,
                                        objective_normalizer norm, objective_metrics *om,
                                        double *entropy_sum, learner_metrics *samples,
                                        int *finite, kpo_error *err)
{
    const int64_t T = mb->seq_offsets[mb->n];
    int64_t *offsets = malloc((size_t)(mb->n + 1) * sizeof *offsets);
    int64_t *rows = malloc((size_t)(mb->n + 1) * sizeof *rows);
    int32_t *targets = malloc((size_t)T * sizeof *targets);
    int status = (offsets && rows && targets)
                     ? KPO_OK
                     : error_set(err, "learner: out of memory for a %lld-token micro-batch",
                                 (long long)T);
    double *logp = NULL; /* the samples' log-probs */
    int64_t sample_tokens = 0;
    if (status == KPO_OK) {
        response_offsets(mb, offsets);
        for (int64_t i = 0; i < mb->n; i++)
            rows[i] = mb->seq_offsets[i] + mb->prompt_len[i] - 1;
        sample_tokens = sample_tokens_wanted(cfg, offsets, mb->n, samples);
        if (sample_tokens > 0 && !(logp = malloc((size_t)sample_tokens * sizeof *logp)))
            status = error_set(err, "learner: out of memory for log-ratio samples");
    }
    gpu_model_head head;
    if (status == KPO_OK) {
        response_targets(mb, targets);
        model_batch batch = {mb->tokens, T, mb->seq_offsets, mb->n};
        status = model_backend_forward_device(b, &batch, targets, &head, err);
    }
    if (status == KPO_OK) {
        objective_cuda_batch ob = {.n_responses = mb->n, .offsets = offsets, .rows = rows,
                                   .advantages = mb->advantage, .logp_old = logp_old,
                                   .n_rows = T, .d_logp = head.logp, .d_entropy = head.entropy,
                                   .d_dlogp = head.dlogp, .logp_out = logp,
                                   .logp_out_tokens = sample_tokens};
        status = objective_cuda_compute(&cfg->objective, &ob, norm, om, entropy_sum, finite,
                                        head.stream, err);
    }
    if (status == KPO_OK && *finite && logp)
        status = append_samples(cfg, offsets, mb->n, logp, logp_old, samples, err);
    if (status == KPO_OK && *finite)
        status = model_backend_backward_device(b, false, err);
    free(offsets);
    free(rows);
    free(targets);
    free(logp);
    return status;
}

/* Forward, objective and backward of one micro-batch: gradients add to
 * the backend's. *finite becomes 0 (and the backward is skipped) when a
 * log-prob is not finite. */
static int micro_batch_gradients(model_backend *b, const learner_config *cfg, const rl_batch *mb,
                                 const double *logp_old, objective_normalizer norm,
                                 objective_metrics *om, double *entropy_sum,
                                 learner_metrics *samples, int *finite, kpo_error *err)
{
    /* The official filter witness (objective.official_width) runs on the
     * host: on CUDA its micro-batches take the host objective path. */
    if (b->device == MODEL_DEVICE_CUDA && cfg->objective.official_width == 0)
        return micro_batch_gradients_device(b, cfg, mb, logp_old, norm, om, entropy_sum, samples,
                                            finite, err);
    const int64_t T = mb->seq_offsets[mb->n], R = rl_batch_response_tokens(mb);
    int64_t *offsets = malloc((size_t)(mb->n + 1) * sizeof *offsets);
    int32_t *targets = malloc((size_t)T * sizeof *targets);
    double *logp = malloc((size_t)(R + 1) * sizeof *logp);
    double *entropy = malloc((size_t)(R + 1) * sizeof *entropy);
    double *d_logp = malloc((size_t)(R + 1) * sizeof *d_logp);
    float *dlogp_pos = calloc((size_t)T, sizeof *dlogp_pos);
    int status = (offsets && targets && logp && entropy && d_logp && dlogp_pos)
                     ? KPO_OK
                     : error_set(err, "learner: out of memory for a %lld-token micro-batch",
                                 (long long)T);
    if (status == KPO_OK) {
        response_offsets(mb, offsets);
        status = forward_batch(b, mb, targets, logp, entropy, err);
    }
    for (int64_t r = 0; status == KPO_OK && r < R && *finite; r++)
        *finite = isfinite(logp[r]) && isfinite(logp_old[r]);
    if (status == KPO_OK && *finite)
        status = objective_compute(&cfg->objective, logp, logp_old, offsets, mb->n,
                                   mb->advantage, norm, d_logp, om, err);
    if (status == KPO_OK && *finite && samples)
        status = append_samples(cfg, offsets, mb->n, logp, logp_old, samples, err);
    if (status == KPO_OK && *finite) {
        int64_t k = 0;
        for (int64_t p = 0; p < T; p++)
            if (targets[p] >= 0)
                dlogp_pos[p] = (float)d_logp[k++];
        for (int64_t r = 0; r < R; r++)
            *entropy_sum += entropy[r];
        status = model_backend_backward(b, dlogp_pos, NULL, err);
    }
    model_backend_drop_acts(b);
    free(offsets);
    free(targets);
    free(logp);
    free(entropy);
    free(d_logp);
    free(dlogp_pos);
    return status;
}

int learner_gradients(model_backend *b, const learner_config *cfg, const rl_batch *share,
                      const double *logp_old, objective_normalizer norm,
                      objective_metrics *om, double *entropy_sum, learner_metrics *samples,
                      kpo_error *err)
{
    if (model_backend_zero_grads(b, err) != KPO_OK)
        return KPO_ERR;
    int status = KPO_OK, finite = 1;
    int64_t done_tokens = 0; /* response tokens of the micro-batches done */
    for (int64_t first = 0; first < share->n && status == KPO_OK && finite;) {
        int64_t count = micro_batch_count(share, first, cfg->micro_batch_tokens);
        rl_batch mb;
        status = rl_batch_slice(share, first, count, &mb, err);
        if (status != KPO_OK)
            break;
        status = micro_batch_gradients(b, cfg, &mb, logp_old + done_tokens, norm, om,
                                       entropy_sum, samples, &finite, err);
        done_tokens += rl_batch_response_tokens(&mb);
        rl_batch_free(&mb);
        first += count;
    }
    /* A diverged model (non-finite log-probs) is not an input error: the
     * mini-batch's loss becomes NaN, and every learner skips the update
     * together once the losses are summed. */
    if (status == KPO_OK && !finite)
        om->loss = NAN;
    return status;
}

/* Sums (or maxes) the scalar metrics over learners. */
static int reduce_metrics(const learner_comm *comm, learner_metrics *lm, kpo_error *err)
{
    objective_metrics *o = &lm->objective;
    double sums[7] = {o->loss,         o->tokens,        o->clipped_tokens, o->log_ratio_sum,
                      o->raw_ratio_sum, o->used_ratio_sum, lm->entropy_sum};
    double maxes[4] = {-o->raw_ratio_min, o->raw_ratio_max, -o->used_ratio_min, o->used_ratio_max};
    if (comm->sum_doubles(comm->context, sums, 7, err) != KPO_OK ||
        comm->max_doubles(comm->context, maxes, 4, err) != KPO_OK ||
        comm->merge_stats(comm->context, &o->innovation, 1, err) != KPO_OK)
        return KPO_ERR;
    o->loss = sums[0];
    o->tokens = sums[1];
    o->clipped_tokens = sums[2];
    o->log_ratio_sum = sums[3];
    o->raw_ratio_sum = sums[4];
    o->used_ratio_sum = sums[5];
    lm->entropy_sum = sums[6];
    o->raw_ratio_min = -maxes[0];
    o->raw_ratio_max = maxes[1];
    o->used_ratio_min = -maxes[2];
    o->used_ratio_max = maxes[3];
    return KPO_OK;
}

/* The batch in the order the mini-batches are cut from
 * (docs/minibatch-order.md): balanced puts a reordered copy in *ordered;
 * prompt order needs none. */
static int order_for_minibatches(const rl_batch *batch, const learner_config *cfg,
                                 const learner_comm *comm, rl_batch *ordered, kpo_error *err)
{
    if (cfg->minibatch_order != MINIBATCH_ORDER_BALANCED)
        return KPO_OK;
    int dp = cfg->balance_dp_size > 0 ? cfg->balance_dp_size : comm->size;
    int64_t *perm = malloc((size_t)batch->n * sizeof *perm);
    int ok = perm ? minibatch_order_of_batch(batch, cfg->minibatch_order, dp, cfg->minibatches,
                                             perm, err)
                  : error_set(err, "learner: out of memory");
    if (ok == KPO_OK)
        ok = minibatch_order_apply(batch, perm, ordered, err);
    free(perm);
    return ok == KPO_OK ? KPO_OK : error_prefix(err, "learner.minibatch_order = balanced: ");
}

/* Mini-batch k's global sizes, known to every learner. */
static objective_normalizer minibatch_normalizer(const rl_batch *split, int k, int M)
{
    const int64_t first = (int64_t)k * split->n / M, end = (int64_t)(k + 1) * split->n / M;
    objective_normalizer norm = {0, 0};
    for (int64_t i = first; i < end; i++) {
        int64_t r = split->seq_offsets[i + 1] - split->seq_offsets[i] - split->prompt_len[i];
        norm.responses += r > 0;
        norm.tokens += (double)r;
    }
    return norm;
}

/* One optimizer step on mini-batch k (this learner's share, its old
 * log-probs): gradients, the all-reduce, then AdamW, or a counted skip
 * when the loss or gradient norm is not finite (verl's actor skips too). */
static int minibatch_update(model_backend *b, const learner_config *cfg, const learner_comm *comm,
                            const rl_batch *share, const double *old, objective_normalizer norm,
                            int k, learner_metrics *metrics, kpo_error *err)
{
    objective_metrics om;
    objective_metrics_init(&om);
    /* Samples from every mini-batch, not only the last: a replay of the
     * stale ones alone (kpo filter --minibatches off-policy) needs them
     * told apart from the on-policy first. The per-step total stays
     * log_samples, split evenly; a share too small to fill its part
     * leaves the rest to the next mini-batch. */
    learner_config sample_cfg = *cfg;
    sample_cfg.log_samples = cfg->log_samples * (k + 1) / cfg->minibatches;
    const int64_t kept_before = metrics->n_samples;
    int status = learner_gradients(b, &sample_cfg, share, old, norm, &om, &metrics->entropy_sum,
                                   comm->rank == 0 ? metrics : NULL, err);
    for (int64_t r = kept_before; r < metrics->n_samples; r++)
        metrics->sample_minibatch[r] = k + 1;
    double loss = om.loss, grad_norm = 0;
    float *grads;
    int64_t n_params;
    model_backend_grads(b, &grads, &n_params);
    if (status == KPO_OK)
        status = comm->sum_floats(comm->context, grads, n_params, err);
    if (status == KPO_OK)
        status = comm->sum_doubles(comm->context, &loss, 1, err);
    if (status == KPO_OK)
        status = model_backend_grad_norm(b, &grad_norm, err);
    if (status != KPO_OK)
        return KPO_ERR;
    if (!isfinite(loss) || !isfinite(grad_norm)) {
        if (cfg->fail_nonfinite)
            return error_set(err, "learner: mini-batch %d: loss %g, gradient norm %g "
                                  "(learner.nonfinite_update = fail)", k + 1, loss, grad_norm);
        metrics->skipped++; /* every learner sees the same sums: all skip together */
        return KPO_OK;
    }
    objective_metrics_merge(&metrics->objective, &om);
    metrics->minibatch_innovation[k] = om.innovation;
    if (model_backend_optimizer_step(b, &grad_norm, err) != KPO_OK)
        return KPO_ERR;
    metrics->updates++;
    metrics->grad_norm_sum += grad_norm;
    metrics->grad_norm_max = fmax(metrics->grad_norm_max, grad_norm);
    return KPO_OK;
}

int learner_step(model_backend *b, const learner_config *cfg, rl_batch *batch,
                 const learner_comm *comm, learner_metrics *metrics, kpo_error *err)
{
    learner_metrics_free(metrics);
    memset(metrics, 0, sizeof *metrics);
    objective_metrics_init(&metrics->objective);
    const int M = cfg->minibatches;
    metrics->minibatch_innovation = calloc((size_t)(M > 0 ? M : 1), sizeof(innov_stats));
    if (!metrics->minibatch_innovation)
        return error_set(err, "learner: out of memory");
    metrics->n_minibatches = M;
    if (M < 1 || cfg->group_size < 1 || batch->n % cfg->group_size != 0)
        return error_set(err, "learner: %lld sequences do not form groups of %d",
                         (long long)batch->n, cfg->group_size);
    if (advantage_grpo(batch->reward, batch->n / cfg->group_size, cfg->group_size,
                       cfg->norm_adv_by_std, cfg->adv_eps, batch->advantage, err) != KPO_OK)
        return KPO_ERR;
    /* The advantages above need contiguous groups and do not depend on the
     * order, so they come first; the caller's batch keeps prompt order. */
    rl_batch ordered = {0};
    if (order_for_minibatches(batch, cfg, comm, &ordered, err) != KPO_OK)
        return KPO_ERR;
    const rl_batch *split = cfg->minibatch_order == MINIBATCH_ORDER_BALANCED ? &ordered : batch;

    /* Old-policy log-probs of every share, before any update. */
    double t0 = timer_now();
    rl_batch *shares = calloc((size_t)M, sizeof *shares);
    double **old = calloc((size_t)M, sizeof *old);
    int status = (shares && old) ? KPO_OK : error_set(err, "learner: out of memory");
    for (int k = 0; k < M && status == KPO_OK; k++) {
        int64_t first, count;
        share_of(split->n, M, k, comm->rank, comm->size, &first, &count);
        status = rl_batch_slice(split, first, count, &shares[k], err);
        if (status == KPO_OK) {
            int64_t R = rl_batch_response_tokens(&shares[k]);
            old[k] = malloc((size_t)(R > 0 ? R : 1) * sizeof **old);
            status = old[k] ? learner_response_logprobs(b, &shares[k], cfg->micro_batch_tokens,
                                                        old[k], NULL, err)
                            : error_set(err, "learner: out of memory");
        }
    }
    double t1 = timer_now();
    for (int k = 0; k < M && status == KPO_OK; k++) {
        const objective_normalizer norm = minibatch_normalizer(split, k, M);
        if (norm.tokens > 0)
            status = minibatch_update(b, cfg, comm, &shares[k], old[k], norm, k, metrics, err);
    }
    double t2 = timer_now();
    if (status == KPO_OK)
        status = reduce_metrics(comm, metrics, err);
    if (status == KPO_OK)
        status = comm->merge_stats(comm->context, metrics->minibatch_innovation, M, err);
    metrics->old_logprob_seconds = t1 - t0;
    metrics->learn_seconds = t2 - t1;
    for (int k = 0; k < M; k++) {
        if (shares)
            rl_batch_free(&shares[k]);
        if (old)
            free(old[k]);
    }
    free(shares);
    free(old);
    rl_batch_free(&ordered);
    return status;
}
