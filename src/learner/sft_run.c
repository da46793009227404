/* The kpo sft pipeline behind the command line (cli/cmd_sft.c parses the
 * options): load the data and the starting model, train, evaluate on the
 * held-out problems, save the model with its tokenizer and kpo_model.json. */
#include "learner/sft_run.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timer.h"
#include "data/arith_task.h"
#include "data/prompt_template.h"
#include "eval/eval_device.h"
#include "io/checkpoint.h"
#include "learner/sft.h"
#include "model/model_io_util.h"
#include "train/train_data.h"

/* Training records and held-out records. arith draws them from its two
 * disjoint splits; a JSONL file keeps its last `eval` records back. */
static int load_data(const sft_settings *s, dataset *train, dataset *test, kpo_error *err)
{
    dataset_init(train);
    dataset_init(test);
    if (strcmp(s->data, "arith") == 0)
        return arith_task_dataset(train, (uint64_t)s->seed, ARITH_TRAIN,
                                  (size_t)s->train_problems, (int)s->difficulty, err) == KPO_OK &&
                       arith_task_dataset(test, (uint64_t)s->seed, ARITH_TEST, (size_t)s->eval,
                                          (int)s->difficulty, err) == KPO_OK
                   ? KPO_OK
                   : KPO_ERR;
    if (dataset_load(train, s->data, NULL, err) != KPO_OK)
        return KPO_ERR;
    if (train->count <= (size_t)s->eval)
        return error_set(err, "%s: %zu records, need more than --eval %lld to train on", s->data,
                         train->count, s->eval);
    for (size_t i = train->count - (size_t)s->eval; i < train->count; i++) {
        if (dataset_append(test, &train->records[i], err) != KPO_OK)
            return KPO_ERR;
        memset(&train->records[i], 0, sizeof train->records[i]); /* moved */
    }
    train->count -= (size_t)s->eval;
    return KPO_OK;
}

/* The tokenizer and the starting weights. */
static int load_start(const sft_settings *s, tokenizer **tok, model *m, char *tok_name,
                      size_t tok_size, kpo_error *err)
{
    if (s->init) {
        snprintf(tok_name, tok_size, "%s", s->tokenizer ? s->tokenizer : "byte");
    } else if (train_tokenizer_resolve(s->tokenizer, s->model_dir, tok_name, tok_size, err) !=
               KPO_OK) {
        return KPO_ERR;
    }
    if (tokenizer_load(tok, tok_name, err) != KPO_OK)
        return KPO_ERR;
    int status;
    if (s->init) {
        model_config config = sft_tiny_config((int64_t)tokenizer_vocab_size(*tok));
        status = model_init(m, &config, err);
        if (status == KPO_OK)
            model_init_random(m, (uint64_t)s->seed, 0.02);
    } else {
        status = model_load(s->model_dir, m, err);
        if (status == KPO_OK && m->config.vocab_size < (int64_t)tokenizer_vocab_size(*tok)) {
            status = error_set(err, "%s: vocab_size %lld is smaller than the tokenizer's %zu",
                               s->model_dir, (long long)m->config.vocab_size,
                               tokenizer_vocab_size(*tok));
            model_free(m);
        }
    }
    if (status != KPO_OK)
        tokenizer_free(*tok);
    return status;
}

/* kpo_model.json: what later commands need to prompt and score this model
 * the way it was trained. The tokenizer is recorded in the directory
 * (checkpoint_write_tokenizer): "byte" by name here, a directory's files
 * copied beside the weights (no "tokenizer" entry: train_tokenizer_resolve
 * then uses the directory itself), with where they came from kept as
 * "tokenizer_source". */
static int write_model_meta(const sft_settings *s, const char *tok_name, double final_loss,
                            double greedy_accuracy, kpo_error *err)
{
    cJSON *root = cJSON_CreateObject();
    if (strcmp(tok_name, "byte") == 0)
        cJSON_AddStringToObject(root, "tokenizer", tok_name);
    else
        cJSON_AddStringToObject(root, "tokenizer_source", tok_name);
    cJSON_AddStringToObject(root, "chat_template", s->chat);
    cJSON_AddStringToObject(root, "prompt_template", s->prompt);
    cJSON_AddStringToObject(root, "reward", s->reward);
    cJSON *sft = cJSON_AddObjectToObject(root, "sft");
    cJSON_AddStringToObject(sft, "data", s->data);
    cJSON_AddNumberToObject(sft, "difficulty", (double)s->difficulty);
    cJSON_AddNumberToObject(sft, "steps", (double)s->steps);
    cJSON_AddNumberToObject(sft, "batch", (double)s->batch);
    cJSON_AddNumberToObject(sft, "lr", s->lr);
    cJSON_AddNumberToObject(sft, "seed", (double)s->seed);
    cJSON_AddStringToObject(sft, "device", model_device_name(s->device));
    cJSON_AddNumberToObject(sft, "final_loss", final_loss);
    if (greedy_accuracy >= 0)
        cJSON_AddNumberToObject(sft, "greedy_accuracy", greedy_accuracy);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    char path[4200];
    snprintf(path, sizeof path, "%s/kpo_model.json", s->out);
    int status = text ? model_io_write_atomic(path, text, strlen(text), err)
                      : error_set(err, "%s: out of memory", path);
    free(text);
    return status;
}

/* AdamW with the command line's settings, and the trainer on s->device
 * (cuda: the current GPU, checked by sft_run); on failure neither is left
 * to free. */
static int open_trainer(const sft_settings *s, model *m, const sft_examples *ex, adamw_state *opt,
                        sft_trainer *t, kpo_error *err)
{
    adamw_config oc = adamw_config_default();
    oc.lr = s->lr;
    oc.warmup_steps = s->warmup;
    oc.max_grad_norm = s->clip;
    oc.weight_decay = s->weight_decay;
    if (adamw_init(opt, m, &oc, err) != KPO_OK)
        return KPO_ERR;
    if (sft_trainer_init(t, m, opt, s->device, ex, s->batch, (uint64_t)s->seed, err) != KPO_OK) {
        adamw_free(opt);
        return s->device == MODEL_DEVICE_CUDA ? error_prefix(err, "--device cuda: ") : KPO_ERR;
    }
    return KPO_OK;
}

static int run_training(const sft_settings *s, sft_trainer *trainer, const sft_examples *ex,
                        double *final_loss, kpo_error *err)
{
    const double start = timer_now();
    double window_loss = 0;
    int64_t window_steps = 0, tokens = 0;
    *final_loss = 0;
    for (long long step = 1; step <= s->steps; step++) {
        sft_step_stats st;
        if (sft_trainer_step(trainer, ex, &st, err) != KPO_OK)
            return KPO_ERR;
        window_loss += st.loss;
        window_steps++;
        tokens += st.n_tokens;
        if (step % s->log_every == 0 || step == s->steps) {
            const double elapsed = timer_now() - start;
            *final_loss = window_loss / (double)window_steps;
            printf("step %lld/%lld  loss %.4f  lr %.2e  grad %.3f  %.0f tok/s  %.1fs\n", step,
                   s->steps, *final_loss, st.lr, st.grad_norm, (double)tokens / elapsed, elapsed);
            fflush(stdout);
            window_loss = 0;
            window_steps = 0;
        }
    }
    return KPO_OK;
}

/* Greedy accuracy (returned) and, with --eval-samples, sampled accuracy at
 * temperature 1 with the share of prompts whose samples disagree. */
static int run_eval(const sft_settings *s, model_backend *b, const tokenizer *tok,
                    const sft_format *fmt, const dataset *test, double *greedy, kpo_error *err)
{
    sft_eval_result r;
    if (sft_evaluate(b, tok, fmt, test, 1, 0.0, (uint64_t)s->seed, s->max_new, &r, err) != KPO_OK)
        return KPO_ERR;
    *greedy = (double)r.n_correct / (double)r.n_prompts;
    printf("eval greedy: accuracy %.1f%% (%lld/%lld held-out problems), %lld unfinished\n",
           100 * *greedy, (long long)r.n_correct, (long long)r.n_prompts,
           (long long)r.n_unstopped);
    if (s->eval_samples < 1)
        return KPO_OK;
    if (sft_evaluate(b, tok, fmt, test, (int)s->eval_samples, 1.0, (uint64_t)s->seed, s->max_new,
                     &r, err) != KPO_OK)
        return KPO_ERR;
    printf("eval T=1, %lld samples: accuracy %.1f%%, prompts with mixed rewards %.1f%% (%lld/%lld)\n",
           s->eval_samples, 100.0 * (double)r.n_correct / (double)r.n_responses,
           100.0 * (double)r.n_mixed_groups / (double)r.n_prompts, (long long)r.n_mixed_groups,
           (long long)r.n_prompts);
    return KPO_OK;
}

/* Training, then the held-out evaluation with the trained model where it
 * is (the GPU's bf16 copy on cuda); m ends up holding the trained weights. */
static int train_and_evaluate(const sft_settings *s, model *m, const tokenizer *tok,
                              const sft_format *fmt, const sft_examples *ex, const dataset *test,
                              double *final_loss, double *greedy, kpo_error *err)
{
    adamw_state opt;
    sft_trainer trainer;
    if (open_trainer(s, m, ex, &opt, &trainer, err) != KPO_OK)
        return KPO_ERR;
    int status = run_training(s, &trainer, ex, final_loss, err);
    model_backend_drop_acts(&trainer.backend); /* decoding needs none of them */
    if (status == KPO_OK && s->eval > 0)
        status = run_eval(s, &trainer.backend, tok, fmt, test, greedy, err);
    if (status == KPO_OK)
        status = model_backend_sync_to_host(&trainer.backend, err);
    sft_trainer_free(&trainer);
    adamw_free(&opt);
    return status;
}

int sft_run(const sft_settings *s, kpo_error *err)
{
    /* A machine without a GPU hears so before anything is loaded, and not
     * what a GPU model of this shape would have needed. */
    if (s->device == MODEL_DEVICE_CUDA && eval_device_require_gpu(err) != KPO_OK)
        return error_prefix(err, "--device cuda: ");
    sft_format fmt;
    char *prompt_text = NULL, tok_name[4096];
    if (prompt_template_resolve(s->prompt, &prompt_text, err) != KPO_OK)
        return error_prefix(err, "--prompt-template: ");
    fmt.prompt_template = prompt_text;
    if (chat_template_parse(s->chat, &fmt.chat, err) != KPO_OK ||
        reward_kind_parse(s->reward, &fmt.reward, err) != KPO_OK) {
        free(prompt_text);
        return KPO_ERR;
    }
    dataset train, test;
    tokenizer *tok = NULL;
    model m;
    sft_examples ex = {0};
    int status = load_data(s, &train, &test, err);
    int have_model = 0;
    if (status == KPO_OK)
        status = load_start(s, &tok, &m, tok_name, sizeof tok_name, err);
    have_model = status == KPO_OK;
    if (status == KPO_OK)
        status = sft_examples_build(&fmt, tok, &train, &ex, err);
    if (status == KPO_OK)
        printf("sft: %lld parameters, %lld examples (longest %lld tokens), %lld steps of %lld "
               "on %s (%s)\n",
               (long long)model_config_param_count(&m.config), (long long)ex.n,
               (long long)ex.max_len, s->steps, s->batch, model_device_name(s->device),
               eval_device_dtype(s->device));
    double final_loss = 0, greedy = -1;
    if (status == KPO_OK)
        status = train_and_evaluate(s, &m, tok, &fmt, &ex, &test, &final_loss, &greedy, err);
    if (status == KPO_OK)
        status = model_save(&m, s->out, SAFETENSORS_F32, err);
    if (status == KPO_OK)
        status = checkpoint_write_tokenizer(
            s->out, &(checkpoint_source){.tokenizer = tok_name, .model_dir = s->model_dir}, err);
    if (status == KPO_OK)
        status = write_model_meta(s, tok_name, final_loss, greedy, err);
    if (status == KPO_OK)
        printf("wrote %s\n", s->out);
    sft_examples_free(&ex);
    if (have_model) {
        model_free(&m);
        tokenizer_free(tok);
    }
    dataset_free(&train);
    dataset_free(&test);
    free(prompt_text);
    return status;
}

