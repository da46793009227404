/* The kpo train loop over MPI ranks (train_loop.h): rollout, batch,
 * learner step, weight sync, run file, checkpoints, preemption. */
#include "train/train_loop.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "comm/comm_batch.h"
#include "comm/comm_roles.h"
#include "comm/comm_train.h"
#include "core/file_util.h"
#include "core/timer.h"
#include "model/cuda/cuda_probe.h"
#include "io/checkpoint.h"
#include "io/runfile.h"
#include "io/runfile_config.h"
#include "learner/learner_step.h"
#include "model/model.h"
#include "train/train_data.h"
#include "train/train_device.h"
#include "train/train_dump.h"
#include "train/train_rollout.h"
#include "train/run_lock.h"

static volatile sig_atomic_t stop_requested = 0;

static void request_stop(int signal_number)
{
    (void)signal_number;
    stop_requested = 1;
}

void train_install_signal_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = request_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

/* Everything one rank holds during a run. */
typedef struct trainer {
    const train_settings *s;
    comm_roles roles;
    model m;              /* on cuda the host copy: refreshed for checkpoints */
    model_weights grads;  /* cpu learners only */
    adamw_state opt;      /* learners; on cuda the host copy */
    train_device dev;     /* the backend, the learners' reductions, the weight sync */
    train_data data;
    runfile *rf;          /* world rank 0 only */
    char run_path[4200], checkpoint_root[4200];
    double started;
    int64_t first_step;
    const config *cfg;         /* the resolved config: checkpoints record it */
    run_lock lock;             /* world rank 0: RUN/.lock for the life of the run */
    train_state_check resumed; /* world rank 0: how the config differs from the checkpoint's */
} trainer;

/* Rank 0: creates the run file, or reopens it cut back to the checkpoint. */
static int open_run_file(trainer *t, const config *cfg, int64_t resume_step, kpo_error *err)
{
    if (resume_step < 0) {
        char *dump = config_dump(cfg);
        int status = runfile_create(t->run_path, dump ? dump : "", &t->rf, err);
        free(dump);
        return status;
    }
    if (runfile_open_append(t->run_path, &t->rf, err) != KPO_OK)
        return KPO_ERR;
    return runfile_resume_at(t->rf, resume_step, err); /* steps 1..S checked, then cut */
}

/* Where step leaves the prompt stream, and a fingerprint of the stream's
 * prompts (tokenized) and stop ids: a resumed run compares it with the
 * checkpoint's, so moved data and model paths are fine, changed data is not. */
static train_data_cursor data_cursor(const trainer *t, int64_t step)
{
    const train_data *d = &t->data;
    train_data_cursor c = {.position = step * t->s->prompts_per_step, .problems = d->n};
    c.epoch = d->n > 0 ? c.position / d->n : 0;
    c.offset = d->n > 0 ? c.position % d->n : 0;
    uint64_t h = checkpoint_hash_bytes(d->stop.ids, (size_t)d->stop.n * sizeof d->stop.ids[0], 0);
    h = checkpoint_hash_bytes(d->prompt_offsets, (size_t)(d->n + 1) * sizeof *d->prompt_offsets,
                              h);
    c.prompts_hash = checkpoint_hash_bytes(
        d->prompt_tokens, (size_t)d->prompt_offsets[d->n] * sizeof *d->prompt_tokens, h);
    return c;
}

static char *trainer_state_json(const trainer *t, int64_t step)
{
    const train_data_cursor cursor = data_cursor(t, step);
    return train_state_json(t->cfg, step, &cursor);
}

static int save_checkpoint(trainer *t, int64_t step, kpo_error *err)
{
    if (t->roles.world_rank != 0)
        return KPO_OK;
    if (model_backend_sync_to_host(&t->dev.backend, err) != KPO_OK)
        return KPO_ERR;
    /* The checkpoint carries the run's tokenizer and generation_config.json,
     * so kpo eval / kpo export need nothing but the checkpoint. */
    char tok_name[4096];
    int status = train_tokenizer_resolve(t->s->tokenizer, t->s->model_path, tok_name,
                                         sizeof tok_name, err);
    const checkpoint_source source = {.tokenizer = tok_name, .model_dir = t->s->model_path};
    char *state = trainer_state_json(t, step);
    if (status == KPO_OK)
        status = state ? checkpoint_save_from(t->checkpoint_root, step, &t->m, &t->opt, state,
                                              t->s->keep_checkpoints, &source, err)
                       : error_set(err, "checkpoint: out of memory");
    free(state);
    return status;
}

/* A newer checkpoint that failed its manifest: said once, and moved aside
 * (step-N.corrupt) so that neither a later resume nor keep_checkpoints
 * counts it. */
static void skip_corrupt(void *ctx, int64_t step, const char *dir, const char *why)
{
    (void)ctx;
    char aside[4300];
    snprintf(aside, sizeof aside, "%s.corrupt", dir);
    if (file_exists(aside))
        snprintf(aside, sizeof aside, "%s.corrupt-%ld", dir, (long)getpid());
    int moved = rename(dir, aside) == 0;
    fprintf(stderr, "kpo: warning: skipping checkpoint step %lld (%s): %s; %s%s\n",
            (long long)step, dir, why, moved ? "moved aside to " : "could not move it aside",
            moved ? aside : "");
}

/* World rank 0, on --resume from the checkpoint of step: its
 * trainer_state.json against this run (train_state_check_file). A change
 * to a key that alters the experiment is refused, naming each key, unless
 * run.allow_config_change; harmless ones are only said. */
static int check_resume_config(trainer *t, const char *dir, int64_t step, int verified,
                               kpo_error *err)
{
    char path[4300], changes[700];
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    const train_data_cursor cursor = data_cursor(t, step);
    train_state_check *c = &t->resumed;
    if (!verified)
        fprintf(stderr, "kpo: note: %s has no manifest.json (an older kpo's checkpoint): its "
                        "files are not verified\n", dir);
    if (train_state_check_file(path, step, t->cfg, &cursor, !verified, c, err) != KPO_OK)
        return KPO_ERR;
    if (c->legacy)
        fprintf(stderr, "kpo: note: %s holds no config (an older kpo's): the config is not "
                        "compared\n", path);
    if (c->n_refused > 0 && !config_get_bool(t->cfg, "run.allow_config_change")) {
        train_config_changes_describe(c, 0, changes, sizeof changes);
        return error_set(err, "%s: --resume would change the experiment: %s; resume with the "
                              "checkpoint's values, or pass --set run.allow_config_change=true "
                              "to continue with the new ones (recorded in run.h5)",
                         path, changes);
    }
    if (c->n_refused > 0) {
        train_config_changes_describe(c, 0, changes, sizeof changes);
        fprintf(stderr, "kpo: warning: resuming after step %lld with a changed experiment "
                        "(run.allow_config_change = true; recorded in run.h5): %s\n",
                (long long)step, changes);
    }
    if (c->n_changes > c->n_refused) {
        train_config_changes_describe(c, 1, changes, sizeof changes);
        printf("resuming after step %lld with %s\n", (long long)step, changes);
    }
    return KPO_OK;
}

/* World rank 0: takes the run directory's lock (when it exists), then
 * decides where the run starts: -1 fresh, else the newest checkpoint that
 * passes its manifest (newer corrupt ones skipped) and whose trainer state
 * agrees with this run. */
static int select_resume_step(trainer *t, int resume, int64_t *resume_step, kpo_error *err)
{
    *resume_step = -1;
    if (file_exists(t->s->out_dir) && run_lock_acquire(&t->lock, t->s->out_dir, err) != KPO_OK)
        return KPO_ERR;
    if (!resume) {
        if (file_exists(t->run_path))
            return error_set(err, "%s: already exists; pass --resume to continue that run, or "
                                  "choose another run.out", t->run_path);
        return KPO_OK;
    }
    char dir[4200];
    int verified = 0;
    if (checkpoint_find_verified(t->checkpoint_root, dir, sizeof dir, resume_step, &verified,
                                 skip_corrupt, NULL, err) != KPO_OK)
        return KPO_ERR;
    if (*resume_step < 0) {
        if (file_exists(t->run_path))
            return error_set(err, "%s: --resume, but no checkpoint under %s to resume from",
                             t->run_path, t->checkpoint_root);
        return KPO_OK; /* nothing ran yet: start fresh */
    }
    return check_resume_config(t, dir, *resume_step, verified, err);
}

/* Every rank: world rank 0 selects (select_resume_step), the others learn
 * the step from it. A collective: every rank must reach it. *failed as
 * comm_first_failure. */
static int agree_resume_step(trainer *t, int resume, MPI_Comm world, int64_t *resume_step,
                             int *failed, kpo_error *err)
{
    int status = t->roles.world_rank == 0 ? select_resume_step(t, resume, resume_step, err)
                                          : KPO_OK;
    *failed = comm_first_failure(world, status);
    *resume_step = comm_broadcast_int64(world, *resume_step);
    return *failed == COMM_NO_FAILURE ? KPO_OK : KPO_ERR;
}

/* The weights and optimizer state of the checkpoint of resume_step (-1:
 * none, a fresh run), restored on every rank. */
static int restore(trainer *t, int64_t resume_step, kpo_error *err)
{
    char dir[4200];
    if (resume_step < 0)
        return KPO_OK;
    checkpoint_dir_name(t->checkpoint_root, resume_step, dir, sizeof dir);
    return checkpoint_load(dir, &t->m, t->roles.is_learner ? &t->opt : NULL, NULL, err);
}

/* World rank 0, once every rank is ready: the run directory, its lock (a
 * fresh run's directory is only now created), the config change a resume
 * was allowed (recorded before the run file is reopened), the run file. */
static int prepare_run_dir(trainer *t, const config *cfg, int64_t resume_step, kpo_error *err)
{
    if (file_make_dirs(t->s->out_dir, err) != KPO_OK)
        return error_prefix(err, "run.out: ");
    if (run_lock_acquire(&t->lock, t->s->out_dir, err) != KPO_OK)
        return KPO_ERR;
    if (resume_step >= 0 && file_exists(t->run_path)) {
        char changes[700], *dump = NULL;
        const int record = t->resumed.n_refused > 0;
        if (record) {
            train_config_changes_describe(&t->resumed, 0, changes, sizeof changes);
            dump = config_dump(cfg);
        }
        int status = runfile_record_config_change(t->run_path, resume_step,
                                                  record ? changes : NULL, dump,
                                                  "run.allow_config_change = true", err);
        free(dump);
        if (status != KPO_OK)
            return KPO_ERR;
    }
    return open_run_file(t, cfg, resume_step, err);
}

/* Host side of the start-up: roles, model, data (the checkpoint of a
 * resumed run comes after: agree_resume_step, restore). Nothing is written
 * yet. */
static int trainer_open(trainer *t, const train_settings *s, MPI_Comm world, kpo_error *err)
{
    t->s = s;
    if (comm_roles_init(&t->roles, world, s->rollout_ranks, err) != KPO_OK)
        return KPO_ERR;
    snprintf(t->run_path, sizeof t->run_path, "%s/run.h5", s->out_dir);
    snprintf(t->checkpoint_root, sizeof t->checkpoint_root, "%s/checkpoints", s->out_dir);
    /* Gradients and AdamW state live on learners only: a rollout rank holds
     * just the weights it samples with. On cuda the gradients live on the
     * GPU; the host AdamW state is what checkpoints save and load. */
    const int host_grads = t->roles.is_learner && s->device == MODEL_DEVICE_CPU;
    if (model_load(s->model_path, &t->m, err) != KPO_OK ||
        (host_grads && model_weights_init(&t->m, &t->grads, err) != KPO_OK) ||
        (t->roles.is_learner && adamw_init(&t->opt, &t->m, &s->optim, err) != KPO_OK) ||
        train_data_open(s, &t->data, err) != KPO_OK)
        return KPO_ERR;
    if ((int64_t)tokenizer_vocab_size(t->data.tok) > t->m.config.vocab_size)
        return error_set(err, "model.path = '%s': vocabulary of %lld rows is smaller than the "
                              "tokenizer's %zu ids", s->model_path,
                         (long long)t->m.config.vocab_size, tokenizer_vocab_size(t->data.tok));
    return KPO_OK;
}

static int64_t longest_prompt(const train_data *d)
{
    int64_t longest = 0;
    for (int64_t i = 0; i < d->n; i++)
        if (d->prompt_offsets[i + 1] - d->prompt_offsets[i] > longest)
            longest = d->prompt_offsets[i + 1] - d->prompt_offsets[i];
    return longest;
}

/* Start-up, agreed stage by stage: each stage runs only when every rank
 * passed the one before, and the run directory is written last, so a run
 * that cannot start (no GPU for run.device = cuda, a bad path) leaves
 * nothing behind. *failed: the rank that reports (COMM_NO_FAILURE: none). */
static int trainer_start(trainer *t, const train_settings *s, const config *cfg, int resume,
                         MPI_Comm world, int *failed, kpo_error *err)
{
    int64_t resume_step = -1;
    t->cfg = cfg;
    t->lock = RUN_LOCK_NONE;
    int status = trainer_open(t, s, world, err);
    *failed = comm_first_failure(world, status);
    if (*failed != COMM_NO_FAILURE ||
        agree_resume_step(t, resume, world, &resume_step, failed, err) != KPO_OK)
        return KPO_ERR;
    *failed = comm_first_failure(world, restore(t, resume_step, err));
    if (*failed != COMM_NO_FAILURE)
        return KPO_ERR;
    t->first_step = resume_step + 1 > 0 ? resume_step + 1 : 1;
    status = train_device_open(&t->dev, s, &t->roles, world, &t->m,
                               t->roles.is_learner ? &t->opt : NULL,
                               t->roles.is_learner && s->device == MODEL_DEVICE_CPU ? &t->grads
                                                                                    : NULL,
                               longest_prompt(&t->data), failed, err);
    if (*failed != COMM_NO_FAILURE)
        return KPO_ERR;
    if (t->roles.world_rank == 0)
        status = prepare_run_dir(t, cfg, resume_step, err);
    *failed = comm_first_failure(world, status);
    return *failed == COMM_NO_FAILURE ? KPO_OK : KPO_ERR;
}

static void trainer_close(trainer *t)
{
    kpo_error ignored;
    if (t->rf)
        runfile_close(t->rf, &ignored);
    train_device_close(&t->dev);
    train_data_close(&t->data);
    adamw_free(&t->opt);
    model_weights_free(&t->grads);
    model_free(&t->m);
    comm_roles_free(&t->roles);
    train_state_check_free(&t->resumed);
    run_lock_release(&t->lock);
}

/* Rollout counters summed (max for the longest response and the time)
 * over every rank. */
static void reduce_rollout_stats(MPI_Comm world, rollout_stats *r)
{
    double sums[6] = {r->correct,  r->responses,  r->response_tokens,
                      r->stopped,  r->slot_steps, r->busy_slot_steps};
    double maxes[2] = {r->response_length_max, r->seconds};
    comm_sum_doubles(world, sums, 6);
    comm_max_doubles(world, maxes, 2);
    r->correct = sums[0];
    r->responses = sums[1];
    r->response_tokens = sums[2];
    r->stopped = sums[3];
    r->slot_steps = sums[4];
    r->busy_slot_steps = sums[5];
    r->response_length_max = maxes[0];
    r->seconds = maxes[1];
}

static double group_spread_fraction(const rl_batch *b, int G)
{
    int64_t groups = b->n / G, varied = 0;
    for (int64_t g = 0; g < groups; g++)
        for (int i = 1; i < G; i++)
            if (b->reward[g * G + i] != b->reward[g * G]) {
                varied++;
                break;
            }
    return groups ? (double)varied / (double)groups : NAN;
}

/* What a step cost this rank besides the rollout's and the learner's own
 * timings. */
typedef struct step_costs {
    double sync_seconds, step_seconds;
    /* cuda: the most bytes in use on this rank's GPU among the samples taken
     * after each phase; 0 on the cpu; NaN when a sample failed. */
    double gpu_peak_bytes;
} step_costs;

static const double GIB = 1024.0 * 1024.0 * 1024.0;

/* cudart keeps no high-water mark, so the step's peak is the max of samples
 * taken after each phase: memory a phase allocates and frees inside itself
 * is missed. A failed query loses the number, not the run: the peak of the
 * step reads NaN. */
static void sample_gpu_memory(const trainer *t, step_costs *c)
{
    if (t->dev.gpu < 0 || t->roles.world_rank != 0) /* rank 0 alone records it */
        return;
    size_t used = 0;
    kpo_error ignored;
    if (cuda_memory_used_bytes(t->dev.gpu, &used, &ignored) != KPO_OK)
        c->gpu_peak_bytes = NAN;
    else if ((double)used > c->gpu_peak_bytes) /* false once NaN: it stays NaN */
        c->gpu_peak_bytes = (double)used;
}

/* Every name here is documented in docs/runfile.md (tests/e2e/test_runfile_metrics_doc.py). */
static int record_step(trainer *t, int64_t step, const rl_batch *batch, const rollout_stats *rs,
                       const learner_metrics *lm, const step_costs *c, kpo_error *err)
{
    const objective_metrics *o = &lm->objective;
    double reward = 0;
    for (int64_t i = 0; i < batch->n; i++)
        reward += batch->reward[i];
    const double tokens = o->tokens > 0 ? o->tokens : NAN;
    const int64_t optimizer_steps = model_backend_optimizer_steps(&t->dev.backend);
    runfile_metric metrics[] = {
        {"reward_mean", reward / (double)batch->n},
        {"accuracy", rs->correct / rs->responses},
        {"groups_with_signal", group_spread_fraction(batch, t->s->learner.group_size)},
        {"response_length_mean", rs->response_tokens / rs->responses},
        {"response_length_max", rs->response_length_max},
        {"stopped_fraction", rs->stopped / rs->responses},
        {"rollout_slot_occupancy", rs->busy_slot_steps / rs->slot_steps},
        {"entropy_mean", lm->entropy_sum / tokens},
        {"loss", o->loss},
        {"objective_clip_fraction", o->clipped_tokens / tokens},
        {"approx_kl", -o->log_ratio_sum / tokens},
        {"ratio_raw_mean", o->raw_ratio_sum / tokens},
        {"ratio_raw_min", o->raw_ratio_min},
        {"ratio_raw_max", o->raw_ratio_max},
        {"ratio_filtered_mean", o->used_ratio_sum / tokens},
        {"ratio_filtered_min", o->used_ratio_min},
        {"ratio_filtered_max", o->used_ratio_max},
        {"grad_norm_mean", lm->updates ? lm->grad_norm_sum / lm->updates : NAN},
        {"grad_norm_max", lm->grad_norm_max},
        {"updates", (double)lm->updates},
        {"skipped_updates", (double)lm->skipped},
        {"lr", adamw_lr_at(&t->opt.config, optimizer_steps > 0 ? optimizer_steps : 1)},
        {"tokens_response", rs->response_tokens},
        {"tokens_total", (double)batch->seq_offsets[batch->n]},
        {"time_rollout", rs->seconds},
        {"time_old_logprobs", lm->old_logprob_seconds},
        {"time_learn", lm->learn_seconds},
        {"time_sync", c->sync_seconds},
        {"time_step", c->step_seconds},
        {"tokens_per_second", rs->response_tokens / c->step_seconds},
        {"gpu_memory_peak_gib", c->gpu_peak_bytes / GIB},
        {"prompts_skipped_long", (double)t->data.skipped_long},
    };
    if (runfile_append_minibatch_stats(t->rf, step, lm->minibatch_innovation, lm->n_minibatches,
                                       err) != KPO_OK)
        return KPO_ERR;
    if (lm->n_samples > 0 &&
        runfile_append_minibatch_samples(t->rf, step, lm->sample_values, lm->sample_offsets,
                                         lm->sample_minibatch, lm->n_samples, err) != KPO_OK)
        return KPO_ERR;
    return runfile_append_step(t->rf, step, &o->innovation, metrics,
                               sizeof metrics / sizeof metrics[0], err);
}

/* One line per step: the learning signal, then where the time went (the
 * phases do not add up to the step: the gather and reductions are between
 * them) and, on cuda, this rank's GPU memory peak. */
static void print_progress(const trainer *t, int64_t step, const rl_batch *batch,
                           const rollout_stats *rs, const learner_metrics *lm,
                           const step_costs *c)
{
    const objective_metrics *o = &lm->objective;
    double reward = 0;
    for (int64_t i = 0; i < batch->n; i++)
        reward += batch->reward[i] / (double)batch->n;
    double elapsed = timer_now() - t->started;
    double eta = elapsed / (double)(step - t->first_step + 1) * (double)(t->s->steps - step);
    char memory[32] = "";
    if (t->dev.gpu >= 0)
        snprintf(memory, sizeof memory, "  gpu %.1fGiB", c->gpu_peak_bytes / GIB);
    printf("step %3lld/%lld  reward %+.3f  acc %.3f  loss %+.3e  kurt %6.2f  clip %.2e  "
           "tok/s %6.0f  %.1fs [roll %.1f logp %.1f learn %.1f sync %.1f]%s  ETA %.0fs\n",
           (long long)step, (long long)t->s->steps, reward, rs->correct / rs->responses, o->loss,
           innov_stats_kurtosis(&o->innovation), innov_stats_clip_fraction(&o->innovation),
           rs->response_tokens / c->step_seconds, c->step_seconds, rs->seconds,
           lm->old_logprob_seconds, lm->learn_seconds, c->sync_seconds, memory, eta);
    fflush(stdout);
}

/* One step on this rank. */
static int train_step(trainer *t, int64_t step, rollout_stats *rs, learner_metrics *lm,
                      rl_batch *batch, step_costs *costs, kpo_error *err)
{
    const train_settings *s = t->s;
    rl_batch local = {0};
    int status = KPO_OK;
    memset(rs, 0, sizeof *rs);
    if (t->roles.is_rollout) {
        int64_t per_rank = s->prompts_per_step / t->roles.rollout_size;
        status = train_rollout_step(&t->dev.backend, &t->data, s, step,
                                    t->roles.rollout_rank * per_rank, per_rank, &local, rs, err);
    }
    sample_gpu_memory(t, costs);
    if (status == KPO_OK)
        status = comm_allgather_batch(MPI_COMM_WORLD, &local, batch, err);
    rl_batch_free(&local);
    reduce_rollout_stats(MPI_COMM_WORLD, rs);
    if (status == KPO_OK && t->roles.is_learner)
        status = learner_step(&t->dev.backend, &s->learner, batch, &t->dev.lcomm, lm, err);
    sample_gpu_memory(t, costs);
    double t0 = timer_now();
    if (status == KPO_OK)
        status = train_device_sync_weights(&t->dev, &t->roles, err);
    costs->sync_seconds = timer_now() - t0;
    sample_gpu_memory(t, costs);
    return status;
}

int train_run(const train_settings *s, const config *cfg, int resume, MPI_Comm world,
              train_outcome *outcome, kpo_error *err)
{
    trainer t;
    memset(&t, 0, sizeof t);
    memset(outcome, 0, sizeof *outcome);
    const int rank = comm_rank(world);
    int first_failed;
    /* Start-up errors (a bad path, an existing run, no GPU) are usually the
     * same on every rank: agree on them, let the lowest failing rank report,
     * and end cleanly instead of aborting. */
    int status = trainer_start(&t, s, cfg, resume, world, &first_failed, err);
    if (first_failed != COMM_NO_FAILURE) {
        if (rank != first_failed)
            error_set(err, "rank %d failed to start", first_failed);
        outcome->startup_failed = 1;
        outcome->report = rank == first_failed;
        trainer_close(&t);
        return KPO_ERR;
    }
    t.started = timer_now();
    learner_metrics lm = {0};
    outcome->last_step = t.first_step - 1;
    for (int64_t step = t.first_step; status == KPO_OK && step <= s->steps; step++) {
        double t0 = timer_now();
        step_costs costs = {0};
        rollout_stats rs;
        rl_batch batch = {0};
        status = train_step(&t, step, &rs, &lm, &batch, &costs, err);
        costs.step_seconds = timer_now() - t0;
        if (status == KPO_OK && t.roles.world_rank == 0) {
            status = record_step(&t, step, &batch, &rs, &lm, &costs, err);
            if (status == KPO_OK) /* a step the run file lost is not reported done */
                print_progress(&t, step, &batch, &rs, &lm, &costs);
        }
        if (status == KPO_OK && t.roles.world_rank == 0) /* run.dump_responses */
            status = train_dump_step(&t.data, s, step, &batch, err);
        rl_batch_free(&batch);
        if (status != KPO_OK)
            break;
        outcome->last_step = step;
        /* Every rank must agree to stop at the same step. */
        const int stop = comm_any_flag(world, stop_requested);
        int due = step == s->steps || stop ||
                  (s->checkpoint_every > 0 && step % s->checkpoint_every == 0);
        if (due)
            status = save_checkpoint(&t, step, err);
        if (stop && status == KPO_OK) {
            outcome->preempted = 1;
            break;
        }
    }
    /* The caller ends the job; first stop this rank's GPU waiting on NCCL. */
    if (status != KPO_OK)
        train_device_abort(&t.dev);
    learner_metrics_free(&lm);
    trainer_close(&t);
    return status;
}
