/* kpo sft: the supervised warm start. Trains a model (given, or a fresh
 * tiny one for the byte tokenizer) to answer problems in the reward's format,
 * on the CPU or a GPU (--device), writes it with a kpo_model.json naming how
 * it was prompted, and reports greedy and sampled accuracy on held-out
 * problems. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "data/arith_task.h"
#include "learner/sft_run.h"

/* A short prompt for the byte tokenizer: every byte is a token, so the
 * DAPO instruction would make each example ~20x longer to no benefit. */
static const char DEFAULT_PROMPT[] = "{problem}\\n";

static int read_settings(const cli_command_spec *spec, sft_settings *s, kpo_error *err)
{
    s->model_dir = cli_get(spec, "model");
    s->init = cli_get(spec, "init");
    s->out = cli_get(spec, "out");
    s->tokenizer = cli_get(spec, "tokenizer");
    s->data = cli_get(spec, "data") ? cli_get(spec, "data") : "arith";
    s->prompt = cli_get(spec, "prompt-template") ? cli_get(spec, "prompt-template")
                                                 : DEFAULT_PROMPT;
    s->chat = cli_get(spec, "chat-template") ? cli_get(spec, "chat-template") : "raw";
    s->reward = cli_get(spec, "reward") ? cli_get(spec, "reward") : "dapo";
    if (strcmp(s->reward, "program") == 0)
        return error_set(err, "kpo sft: --reward program is not supported: sft targets need a "
                              "built-in reward to render");
    const char *device = cli_get(spec, "device");
    if (model_device_parse(device ? device : "cpu", &s->device, err) != KPO_OK)
        return error_prefix(err, "--");
    if (cli_get_int64(spec, "difficulty", 1, &s->difficulty, err) != KPO_OK ||
        cli_get_int64(spec, "train-problems", 20000, &s->train_problems, err) != KPO_OK ||
        cli_get_int64(spec, "steps", 150, &s->steps, err) != KPO_OK ||
        cli_get_int64(spec, "batch", 32, &s->batch, err) != KPO_OK ||
        cli_get_int64(spec, "warmup", 30, &s->warmup, err) != KPO_OK ||
        cli_get_int64(spec, "seed", 0, &s->seed, err) != KPO_OK ||
        cli_get_int64(spec, "eval", 200, &s->eval, err) != KPO_OK ||
        cli_get_int64(spec, "eval-samples", 8, &s->eval_samples, err) != KPO_OK ||
        cli_get_int64(spec, "max-new-tokens", 24, &s->max_new, err) != KPO_OK ||
        cli_get_int64(spec, "log-every", 50, &s->log_every, err) != KPO_OK ||
        cli_get_double(spec, "lr", 3e-3, &s->lr, err) != KPO_OK ||
        cli_get_double(spec, "clip", 1.0, &s->clip, err) != KPO_OK ||
        cli_get_double(spec, "weight-decay", 0.01, &s->weight_decay, err) != KPO_OK)
        return KPO_ERR;
    if (!s->out)
        return error_set(err, "kpo sft: --out DIR is required");
    if (!s->model_dir == !s->init)
        return error_set(err, "kpo sft: give exactly one of --model DIR and --init tiny");
    if (s->init && strcmp(s->init, "tiny") != 0)
        return error_set(err, "--init: the only random model is 'tiny'");
    if (s->difficulty < ARITH_MIN_DIFFICULTY || s->difficulty > ARITH_MAX_DIFFICULTY)
        return error_set(err, "--difficulty: must be in [%d, %d]", ARITH_MIN_DIFFICULTY,
                         ARITH_MAX_DIFFICULTY);
    if (s->steps < 0 || s->batch < 1 || s->warmup < 0 || s->seed < 0 || s->eval < 0 ||
        s->eval_samples < 0 || s->max_new < 1 || s->log_every < 1 || s->train_problems < 1)
        return error_set(err, "kpo sft: --steps, --warmup, --seed, --eval and --eval-samples "
                              "must be >= 0; --batch, --max-new-tokens, --log-every and "
                              "--train-problems >= 1");
    if (!(s->lr > 0) || !(s->clip >= 0) || !(s->weight_decay >= 0))
        return error_set(err, "kpo sft: --lr must be > 0, --clip and --weight-decay >= 0");
    return KPO_OK;
}

int cmd_sft(int argc, char **argv)
{
    cli_option options[] = {
        {"model", "DIR", "checkpoint to start from", NULL},
        {"init", "tiny", "start from a random tiny Qwen3 for the byte tokenizer instead", NULL},
        {"out", "DIR", "where to write the trained model (required)", NULL},
        {"tokenizer", "T", "byte or a tokenizer directory (default: byte with --init, else "
                           "the model's kpo_model.json or its own files)", NULL},
        {"data", "D", "arith (built-in, default) or a JSONL file (problem, answer)", NULL},
        {"difficulty", "N", "arith: difficulty 1-5 (default 1)", NULL},
        {"train-problems", "N", "arith: training problems drawn (default 20000)", NULL},
        {"prompt-template", "T", "dapo, kpo, boxed, raw or a text with {problem} "
                                 "(default '{problem}\\n')", NULL},
        {"chat-template", "C", "raw (default), qwen3 or qwen3-thinking", NULL},
        {"reward", "R", "dapo (default: target 'Answer: X'), boxed or kpo ('\\boxed{X}')", NULL},
        {"steps", "N", "optimizer steps (default 150)", NULL},
        {"batch", "N", "examples per step (default 32)", NULL},
        {"lr", "LR", "peak learning rate (default 3e-3)", NULL},
        {"warmup", "N", "linear warmup steps, then constant (default 30)", NULL},
        {"clip", "C", "global gradient-norm clip, 0 for none (default 1)", NULL},
        {"weight-decay", "W", "AdamW decoupled weight decay (default 0.01)", NULL},
        {"seed", "N", "seed of the init, data order and problems (default 0)", NULL},
        {"eval", "N", "held-out problems for the final accuracy, 0 to skip (default 200)", NULL},
        {"eval-samples", "G", "also sample G responses at T=1 per problem, 0 to skip (default 8)",
         NULL},
        {"max-new-tokens", "N", "response cap at evaluation (default 24)", NULL},
        {"log-every", "N", "steps between progress lines (default 50)", NULL},
        {"device", "cpu|cuda", "where the model trains and decodes (default cpu; cuda: bf16 "
                               "on the first GPU, fp32 master weights and AdamW)", NULL},
    };
    cli_command_spec spec = {"sft", "(--model DIR | --init tiny) --out DIR [options]",
                             "Supervised warm start: cross-entropy on gold responses written in "
                             "the reward's format, then held-out accuracy.",
                             CLI_OPTIONS(options)};
    int status = command_start_options(&spec, argc, argv);
    if (status >= 0)
        return status;
    kpo_error err;
    sft_settings s;
    if (read_settings(&spec, &s, &err) != KPO_OK || sft_run(&s, &err) != KPO_OK)
        return command_fail(err.message);
    return 0;
}
