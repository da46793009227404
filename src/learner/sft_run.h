/* kpo sft's pipeline: the settings the command line gives and the one
 * call that runs them (data, starting model, training, held-out
 * evaluation, the saved model with kpo_model.json). */
#ifndef KPO_LEARNER_SFT_RUN_H
#define KPO_LEARNER_SFT_RUN_H

#include "core/error.h"
#include "model/model_backend.h"

typedef struct sft_settings {
    const char *model_dir, *init, *out, *tokenizer, *data, *prompt, *chat, *reward;
    long long difficulty, train_problems, steps, batch, warmup, seed, eval, eval_samples;
    long long max_new, log_every;
    double lr, clip, weight_decay;
    model_device device;
} sft_settings;

/* Everything after option checking (s checked by the caller): prints
 * progress and the evaluation, writes s->out; owns nothing the caller
 * frees. */
int sft_run(const sft_settings *s, kpo_error *err);

#endif
