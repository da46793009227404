/* kpo sft's library side: gold (prompt, response) pairs built in the
 * reward's format, and the cross-entropy training step through the model
 * backend (CPU or GPU). */
#include "learner/sft.h"

#include <stdlib.h>
#include <string.h>

#include "data/prompt_encode.h"
#include "model/model_batch.h"

model_config sft_tiny_config(int64_t vocab_size)
{
    model_config c = {.vocab_size = vocab_size, .hidden_size = 128, .intermediate_size = 256,
                      .num_hidden_layers = 2, .num_attention_heads = 4, .num_key_value_heads = 2,
                      .head_dim = 32, .max_position_embeddings = 1024, .rope_theta = 10000.0,
                      .rms_norm_eps = 1e-6, .tie_word_embeddings = true};
    return c;
}

int sft_target_text(reward_kind reward, const char *answer, text_buf *out, kpo_error *err)
{
    /* dapo reads the "Answer:" line; boxed and kpo the last \boxed{}. */
    text_buf_append_str(out, reward == REWARD_DAPO ? "Answer: " : "\\boxed{");
    text_buf_append_str(out, answer);
    if (reward != REWARD_DAPO)
        text_buf_append_char(out, '}');
    return out->failed ? error_set(err, "sft: out of memory") : KPO_OK;
}

int sft_encode_prompt(const sft_format *fmt, const tokenizer *tok, const char *problem,
                      id_list *out, kpo_error *err)
{
    text_buf scratch;
    text_buf_init(&scratch);
    int status = prompt_encode_one(fmt->prompt_template, fmt->chat, tok, problem, &scratch, out,
                                   err);
    text_buf_free(&scratch);
    return status;
}

/* One record's prompt ids then target ids into ids; *prompt_len set. */
static int encode_pair(const sft_format *fmt, const tokenizer *tok, const dataset_record *rec,
                       id_list *ids, int64_t *prompt_len, kpo_error *err)
{
    text_buf target;
    text_buf_init(&target);
    reward_result scored;
    int status = sft_encode_prompt(fmt, tok, rec->problem, ids, err);
    *prompt_len = (int64_t)ids->count;
    if (status == KPO_OK)
        status = sft_target_text(fmt->reward, rec->answer, &target, err);
    if (status == KPO_OK)
        status = reward_score(fmt->reward, target.data, rec->answer, NULL, &scored, err);
    if (status == KPO_OK && !scored.correct)
        status = error_set(err, "the %s reward does not accept the target '%s'",
                           reward_kind_name(fmt->reward), target.data);
    if (status == KPO_OK)
        status = tokenizer_encode(tok, target.data, target.len, 0, ids, err);
    if (status == KPO_OK)
        id_list_push(ids, tokenizer_eos_id(tok));
    if (status == KPO_OK && ids->failed)
        status = error_set(err, "out of memory");
    text_buf_free(&target);
    return status;
}

int sft_examples_build(const sft_format *fmt, const tokenizer *tok, const dataset *ds,
                       sft_examples *out, kpo_error *err)
{
    memset(out, 0, sizeof *out);
    if (tokenizer_eos_id(tok) < 0)
        return error_set(err, "sft: the tokenizer has no end-of-text token to end targets with");
    out->offsets = malloc((ds->count + 1) * sizeof *out->offsets);
    out->prompt_len = malloc((ds->count + 1) * sizeof *out->prompt_len);
    id_list all;
    id_list_init(&all);
    int status = out->offsets && out->prompt_len ? KPO_OK : error_set(err, "sft: out of memory");
    if (status == KPO_OK)
        out->offsets[0] = 0;
    for (size_t i = 0; status == KPO_OK && i < ds->count; i++) {
        int64_t before = (int64_t)all.count;
        status = encode_pair(fmt, tok, &ds->records[i], &all, &out->prompt_len[i], err);
        if (status != KPO_OK) {
            error_prefix(err, "sft example %zu (problem '%s'): ", i, ds->records[i].problem);
            break;
        }
        out->prompt_len[i] -= before;
        out->offsets[i + 1] = (int64_t)all.count;
        int64_t len = out->offsets[i + 1] - before;
        if (len > out->max_len)
            out->max_len = len;
        out->n++;
    }
    out->tokens = all.ids; /* ownership moves to the examples */
    if (status != KPO_OK)
        sft_examples_free(out);
    return status;
}

void sft_examples_free(sft_examples *ex)
{
    free(ex->tokens);
    free(ex->offsets);
    free(ex->prompt_len);
    memset(ex, 0, sizeof *ex);
}

/* The backend over m: on cuda a training GPU model whose plan budgets the
 * largest packed batch (batch_size longest examples). */
static int open_backend(sft_trainer *t, model *m, adamw_state *opt, model_device device,
                        int64_t max_tokens, kpo_error *err)
{
    if (device == MODEL_DEVICE_CPU) {
        if (model_weights_init(m, &t->grads, err) != KPO_OK)
            return KPO_ERR;
        t->backend = model_backend_cpu(m, opt, &t->grads);
        return KPO_OK;
    }
    gpu_model_options o;
    memset(&o, 0, sizeof o);
    o.train = true;
    o.recompute = true; /* as the learner's default: activations of a layer at a time */
    o.max_tokens = max_tokens;
    o.optim = opt->config;
    return model_backend_cuda_create(&t->backend, m, opt, &o, err);
}

int sft_trainer_init(sft_trainer *t, model *m, adamw_state *opt, model_device device,
                     const sft_examples *ex, int64_t batch_size, uint64_t seed, kpo_error *err)
{
    memset(t, 0, sizeof *t);
    if (ex->n < 1 || batch_size < 1)
        return error_set(err, "sft: need at least one example and a batch size >= 1");
    t->batch_size = batch_size;
    t->seed = seed;
    t->order_epoch = -1;
    const size_t cap = (size_t)(batch_size * ex->max_len);
    t->tokens = malloc(cap * sizeof *t->tokens);
    t->targets = malloc(cap * sizeof *t->targets);
    t->logp = malloc(cap * sizeof *t->logp);
    t->dlogp = malloc(cap * sizeof *t->dlogp);
    t->seq_offsets = malloc((size_t)(batch_size + 1) * sizeof *t->seq_offsets);
    t->order = malloc((size_t)ex->n * sizeof *t->order);
    int status = t->tokens && t->targets && t->logp && t->dlogp && t->seq_offsets && t->order
                     ? KPO_OK
                     : error_set(err, "sft: out of memory for a batch of %lld", (long long)batch_size);
    if (status == KPO_OK)
        status = open_backend(t, m, opt, device, (int64_t)cap, err);
    if (status != KPO_OK)
        sft_trainer_free(t);
    return status;
}

void sft_trainer_free(sft_trainer *t)
{
    model_backend_free(&t->backend);
    model_weights_free(&t->grads);
    free(t->tokens);
    free(t->targets);
    free(t->logp);
    free(t->dlogp);
    free(t->seq_offsets);
    free(t->order);
    memset(t, 0, sizeof *t);
}

/* Packs the step's examples; targets mark the rows that predict a target
 * token (the prompt's last row predicts the first response token). */
static int64_t pack_batch(sft_trainer *t, const sft_examples *ex, int64_t step)
{
    int64_t used = 0, n_targets = 0;
    t->seq_offsets[0] = 0;
    for (int64_t b = 0; b < t->batch_size; b++) {
        const int64_t pos = (step - 1) * t->batch_size + b, epoch = pos / ex->n;
        if (epoch != t->order_epoch) {
            dataset_shuffle(t->order, (size_t)ex->n, t->seed, (uint64_t)epoch);
            t->order_epoch = epoch;
        }
        const size_t e = t->order[pos % ex->n];
        const int64_t begin = ex->offsets[e], len = ex->offsets[e + 1] - begin;
        memcpy(t->tokens + used, ex->tokens + begin, (size_t)len * sizeof *t->tokens);
        for (int64_t i = 0; i < len; i++) {
            const int scored = i + 1 < len && i + 1 >= ex->prompt_len[e];
            t->targets[used + i] = scored ? ex->tokens[begin + i + 1] : -1;
            n_targets += scored;
        }
        used += len;
        t->seq_offsets[b + 1] = used;
    }
    return n_targets;
}

int sft_trainer_step(sft_trainer *t, const sft_examples *ex, sft_step_stats *stats,
                     kpo_error *err)
{
    model_backend *b = &t->backend;
    const int64_t step = model_backend_optimizer_steps(b) + 1;
    const int64_t n_targets = pack_batch(t, ex, step);
    const int64_t n_tokens = t->seq_offsets[t->batch_size];
    model_batch batch = {t->tokens, n_tokens, t->seq_offsets, t->batch_size};
    /* dlogp doubles as the entropy output the forward insists on: it is
     * overwritten below before it means anything. */
    if (model_backend_forward(b, &batch, t->targets, t->logp, t->dlogp, err) != KPO_OK)
        return KPO_ERR;
    /* Token-mean cross-entropy over the batch's response tokens. */
    double nll = 0;
    const float scale = n_targets > 0 ? -1.0f / (float)n_targets : 0.0f;
    for (int64_t i = 0; i < n_tokens; i++) {
        t->dlogp[i] = t->targets[i] >= 0 ? scale : 0.0f;
        if (t->targets[i] >= 0)
            nll -= t->logp[i];
    }
    if (model_backend_zero_grads(b, err) != KPO_OK ||
        model_backend_backward(b, t->dlogp, NULL, err) != KPO_OK)
        return KPO_ERR;
    stats->loss = n_targets > 0 ? nll / (double)n_targets : 0.0;
    stats->lr = adamw_lr_at(&b->opt->config, step);
    stats->n_tokens = n_tokens;
    stats->n_targets = n_targets;
    return model_backend_optimizer_step(b, &stats->grad_norm, err);
}
