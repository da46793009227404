/* Supervised warm start: cross-entropy on the response tokens of
 * (prompt, gold response) pairs, prompt tokens masked, with the training
 * forward/backward and AdamW of the RL learner. The target response is the
 * gold answer written the way the reward reads it, followed by the end-of-text
 * token (a stop token of generation), so a warm-started policy both answers
 * in the rewarded format and stops. */
#ifndef KPO_LEARNER_SFT_H
#define KPO_LEARNER_SFT_H

#include <stdint.h>

#include "core/error.h"
#include "data/chat_template.h"
#include "data/dataset.h"
#include "model/model_backend.h"
#include "model/optimizer_adamw.h"
#include "rollout/reward.h"
#include "tokenizer/tokenizer.h"

/* How a problem becomes a prompt, and how its answer is scored. */
typedef struct sft_format {
    const char *prompt_template; /* resolved text holding {problem} */
    chat_template_kind chat;
    reward_kind reward;
} sft_format;

/* The embedded default's model: a Qwen3-shaped decoder small enough to
 * learn the arithmetic task in minutes on two CPU cores (docs/sft.md). */
model_config sft_tiny_config(int64_t vocab_size);

/* Tokenized training pairs, packed. */
typedef struct sft_examples {
    int32_t *tokens;     /* [offsets[n]] each example's prompt then its target */
    int64_t *offsets;    /* [n + 1] */
    int64_t *prompt_len; /* [n] tokens of the prompt part */
    int64_t n;
    int64_t max_len;     /* longest example */
} sft_examples;

/* The gold answer as the reward expects it: "Answer: 42" (dapo) or
 * "\boxed{42}" (boxed, kpo). */
int sft_target_text(reward_kind reward, const char *answer, text_buf *out, kpo_error *err);

/* The prompt's token ids: template, then chat template, then tokenizer. */
int sft_encode_prompt(const sft_format *fmt, const tokenizer *tok, const char *problem,
                      id_list *out, kpo_error *err);

/* Builds every record's pair; checks each target earns the reward, so a
 * format the reward cannot read fails here rather than training silently. */
int sft_examples_build(const sft_format *fmt, const tokenizer *tok, const dataset *ds,
                       sft_examples *out, kpo_error *err);
void sft_examples_free(sft_examples *ex);

/* The model backend training goes through, and buffers for one
 * mini-batch, reused every step. */
typedef struct sft_trainer {
    int64_t batch_size;
    uint64_t seed;
    model_backend backend; /* forward, backward, AdamW; decoding for sft_evaluate */
    model_weights grads;   /* the CPU backend's gradient buffer; unused on cuda */
    int32_t *tokens;      /* [batch_size * max_len] */
    int64_t *seq_offsets; /* [batch_size + 1] */
    int32_t *targets;     /* [batch_size * max_len] next token on response rows, else -1 */
    float *logp;          /* [batch_size * max_len] */
    float *dlogp;         /* [batch_size * max_len] (also the forward's unused entropies) */
    size_t *order;        /* [n examples] the current epoch's shuffle */
    int64_t order_epoch;
} sft_trainer;

typedef struct sft_step_stats {
    double loss;        /* mean cross-entropy per response token (nats) */
    double grad_norm;   /* before clipping */
    double lr;
    int64_t n_tokens;   /* tokens through the model */
    int64_t n_targets;  /* response tokens scored */
} sft_step_stats;

/* Trains m with opt (both borrowed, and they must outlive t) on device:
 * the CPU model in place, or on cuda a training GPU model of m on the
 * current GPU (bf16 compute, fp32 master weights and AdamW state, opt's
 * config; model_backend_sync_to_host(&t->backend) brings m and opt up to
 * date before they are saved). */
int sft_trainer_init(sft_trainer *t, model *m, adamw_state *opt, model_device device,
                     const sft_examples *ex, int64_t batch_size, uint64_t seed, kpo_error *err);
void sft_trainer_free(sft_trainer *t);

/* One optimizer step (1-based `step`: the optimizer's steps so far + 1) on
 * the examples at positions (step - 1) * B .. step * B - 1 of an endless
 * stream of epochs, each a shuffle depending only on (seed, epoch). */
int sft_trainer_step(sft_trainer *t, const sft_examples *ex, sft_step_stats *stats,
                     kpo_error *err);

/* Accuracy of sampled (or greedy, temperature 0) responses under the
 * reward, decoded by the model behind b (a trainer's backend, or any). */
typedef struct sft_eval_result {
    int64_t n_prompts;
    int64_t n_responses;
    int64_t n_correct;
    int64_t n_mixed_groups; /* prompts whose samples disagree in reward */
    int64_t n_unstopped;    /* responses cut at max_new_tokens */
} sft_eval_result;

int sft_evaluate(model_backend *b, const tokenizer *tok, const sft_format *fmt, const dataset *ds,
                 int group_size, double temperature, uint64_t seed, int64_t max_new_tokens,
                 sft_eval_result *out, kpo_error *err);

#endif
