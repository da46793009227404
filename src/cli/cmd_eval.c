/* kpo eval: k samples per problem for one or more benchmarks, the work
 * spread over the ranks of mpirun/srun (or one process; --device cuda: one
 * GPU per rank), per-problem correct counts into an HDF5 eval file, avg@k
 * and pass@k printed as in the paper's Table 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "comm/comm_world.h"
#include "core/file_util.h"
#include "data/arith_task.h"
#include "eval/eval_run.h"
#include "rollout/reward_program.h"
#include "train/train_data.h"

static cli_option OPTIONS[] = {
    {"model", "DIR", "checkpoint directory (required)", NULL},
    {"tokenizer", "byte|DIR", "default: the model's kpo_model.json \"tokenizer\", else DIR", NULL},
    {"bench", "NAME=FILE", "a JSONL benchmark, or 'arith' (test split); repeatable", NULL},
    {"arith-problems", "N", "arith: problems (default 256)", NULL},
    {"arith-difficulty", "D", "arith: difficulty 1..5 (default: the run's when it trained on "
                              "arith, else 1)", NULL},
    {"k", "N", "samples per problem (default 16)", NULL},
    {"temperature", "T", "sampling temperature, 0 = greedy (default 1.0)", NULL},
    {"top-p", "P", "nucleus mass (default 0.7, the KPO code's validation sampling)", NULL},
    {"max-new-tokens", "N", "response length cap (default 4096)", NULL},
    {"prompt-template", "NAME", "dapo, kpo, boxed, raw or a {problem} template (default: the "
                                "run's, else the model's kpo_model.json, else dapo)", NULL},
    {"chat-template", "NAME", "qwen3, qwen3-thinking or raw (default: the run's, else "
                              "kpo_model.json, else qwen3)", NULL},
    {"reward", "NAME", "dapo, boxed, kpo or program (default: the run's, else kpo_model.json, "
                       "else dapo); accuracy is correct/incorrect", NULL},
    {"reward-program", "CMD", "--reward program: the grader's command line, run by /bin/sh "
                              "once per rank (default: the run's) (docs/text.md)", NULL},
    {"reward-timeout", "S", "--reward program: seconds to wait for each answer (default 30)",
     NULL},
    {"seed", "N", "sampling seed (default 0)", NULL},
    {"max-batch", "N", "sequences decoded together (default 64)", NULL},
    {"schedule", "waves|refill", "how responses share the KV-cache slots when a chunk has more "
                                 "than fit (default waves; refill: same tokens, fewer steps)",
     NULL},
    {"out", "EVAL.h5", "the eval file to write (required; never overwritten)", NULL},
    {"dump", "FILE.jsonl", "also write every response, one JSON line each, ordered by "
                           "(benchmark, problem, sample) (never overwritten)", NULL},
    {"device", "cpu|cuda", "where the model computes (default cpu; cuda: bf16, one GPU per rank)",
     NULL},
    {"decode-attention", "block|split", "--device cuda: decode attention (default block; split: "
                                        "split-KV, new, unmeasured; docs/cuda.md)", NULL},
    {"prefill-attention", "decode|flash", "--device cuda: prompts' attention (default decode; "
                                          "flash: the training kernel, new, unmeasured)", NULL},
    {"decode-graphs", "true|false", "--device cuda: replay decode steps as CUDA graphs (default "
                                    "false; new, unmeasured)", NULL},
    {"stop", "model|chat|LIST", "what ends a response (default model: end-of-text and the "
                                "model's generation_config.json eos ids, as the paper's code)",
     NULL},
};
enum { N_OPTIONS = sizeof OPTIONS / sizeof OPTIONS[0] };

static cli_command_spec SPEC = {
    "eval", "--model DIR --bench NAME=FILE.jsonl|arith [--bench ...] --out EVAL.h5 [options]",
    "Sample k responses per problem, count the correct ones per problem, print avg@k and "
    "pass@k per benchmark and write the counts to an HDF5 eval file (kpo stats compares two). "
    "Runs alone or under mpirun/srun, the problems spread over the ranks. Templates, reward and "
    "arith difficulty default to what the run that wrote the checkpoint used (its config, "
    "else kpo_model.json); options given win.",
    OPTIONS, N_OPTIONS};

static int read_int(const char *name, long long fallback, long long low, long long high,
                    long long *out, kpo_error *err)
{
    if (cli_get_int64(&SPEC, name, fallback, out, err) != KPO_OK)
        return KPO_ERR;
    if (*out < low || *out > high)
        return error_set(err, "--%s must be in [%lld, %lld], not %lld", name, low, high, *out);
    return KPO_OK;
}

/* --NAME, one of the choices a|b (the first the default): *out its index. */
static int read_choice(const char *name, const char *first, const char *second, int *out,
                       kpo_error *err)
{
    const char *text = cli_get(&SPEC, name);
    if (!text || strcmp(text, first) == 0)
        *out = 0;
    else if (strcmp(text, second) == 0)
        *out = 1;
    else
        return error_set(err, "--%s must be %s or %s, not '%s'", name, first, second, text);
    return KPO_OK;
}

/* The decode paths of --device cuda, as model.* spells them in kpo train. */
static int read_gpu_paths(gpu_model_options *o, kpo_error *err)
{
    int split, flash, graphs;
    if (read_choice("decode-attention", "block", "split", &split, err) != KPO_OK ||
        read_choice("prefill-attention", "decode", "flash", &flash, err) != KPO_OK ||
        read_choice("decode-graphs", "false", "true", &graphs, err) != KPO_OK)
        return KPO_ERR;
    o->decode_attention = split ? GPU_DECODE_ATTENTION_SPLIT : GPU_DECODE_ATTENTION_BLOCK;
    o->prefill_attention = flash ? GPU_PREFILL_ATTENTION_FLASH : GPU_PREFILL_ATTENTION_DECODE;
    o->decode_graphs = graphs;
    return KPO_OK;
}

/* --schedule, as rollout.schedule spells it. */
static int read_schedule(rollout_schedule *out, kpo_error *err)
{
    int refill;
    if (read_choice("schedule", "waves", "refill", &refill, err) != KPO_OK)
        return KPO_ERR;
    *out = refill ? ROLLOUT_REFILL : ROLLOUT_WAVES;
    return KPO_OK;
}

static int read_settings(int argc, char **argv, eval_settings *c, kpo_error *err)
{
    memset(c, 0, sizeof *c);
    c->model_dir = cli_get(&SPEC, "model");
    c->stop = cli_get(&SPEC, "stop") ? cli_get(&SPEC, "stop") : "model";
    c->out_path = cli_get(&SPEC, "out");
    if (!c->model_dir || !c->out_path)
        return error_set(err, "kpo eval: --model and --out are required");
    c->n_benches = cli_get_all(&SPEC, argc, argv, "bench", c->bench_specs, EVAL_MAX_BENCHES);
    if (c->n_benches == 0)
        return error_set(err, "kpo eval: give at least one --bench NAME=FILE.jsonl (or arith)");
    if (c->n_benches > EVAL_MAX_BENCHES)
        return error_set(err, "kpo eval: at most %d --bench", EVAL_MAX_BENCHES);
    if (eval_defaults_resolve(c->model_dir, &c->defaults, err) != KPO_OK)
        return error_prefix(err, "--model: ");
    const eval_defaults *d = &c->defaults;
    char *difficulty_end = NULL;
    long long default_difficulty = strtoll(d->arith_difficulty.value, &difficulty_end, 10);
    if (difficulty_end == d->arith_difficulty.value || *difficulty_end != '\0')
        return error_set(err, "%s: arith difficulty '%s' is not a number",
                         d->arith_difficulty.source, d->arith_difficulty.value);
    long long k, max_new, max_batch, seed, arith_n, arith_d;
    double temperature, top_p, reward_timeout;
    if (read_int("k", 16, 1, 1 << 20, &k, err) != KPO_OK ||
        read_int("max-new-tokens", 4096, 1, 10000000, &max_new, err) != KPO_OK ||
        read_int("max-batch", 64, 1, 1000000, &max_batch, err) != KPO_OK ||
        read_int("seed", 0, 0, INT64_MAX, &seed, err) != KPO_OK ||
        read_int("arith-problems", 256, 1, 10000000, &arith_n, err) != KPO_OK ||
        read_int("arith-difficulty", default_difficulty, ARITH_MIN_DIFFICULTY,
                 ARITH_MAX_DIFFICULTY, &arith_d, err) != KPO_OK ||
        cli_get_double(&SPEC, "temperature", 1.0, &temperature, err) != KPO_OK ||
        cli_get_double(&SPEC, "top-p", 0.7, &top_p, err) != KPO_OK ||
        cli_get_double(&SPEC, "reward-timeout", REWARD_PROGRAM_DEFAULT_TIMEOUT, &reward_timeout,
                       err) != KPO_OK)
        return KPO_ERR;
    if (!(reward_timeout > 0))
        return error_set(err, "--reward-timeout must be > 0 seconds, not %g", reward_timeout);
    const char *chat = cli_get(&SPEC, "chat-template"), *reward = cli_get(&SPEC, "reward");
    const char *device = cli_get(&SPEC, "device");
    c->sampling = (eval_sampling){.k = k, .sampler = {temperature, top_p},
                                  .max_new_tokens = max_new, .max_batch = max_batch,
                                  .seed = (uint64_t)seed,
                                  .reward_program = cli_get(&SPEC, "reward-program"),
                                  .reward_timeout = reward_timeout};
    /* The arithmetic test problems are drawn with seed 0 whatever --seed
     * says: two evaluations with different sampling seeds still see the
     * same problems, which the paired statistics need. */
    c->prompts = (eval_prompt_options){.prompt_template = cli_get(&SPEC, "prompt-template"),
                                       .arith_problems = arith_n, .arith_difficulty = (int)arith_d,
                                       .arith_seed = 0};
    if (!c->prompts.prompt_template)
        c->prompts.prompt_template = d->prompt_template.value;
    if (sampler_config_validate(&c->sampling.sampler, err) != KPO_OK ||
        read_schedule(&c->sampling.schedule, err) != KPO_OK)
        return KPO_ERR;
    if (chat_template_parse(chat ? chat : d->chat_template.value, &c->prompts.chat, err) != KPO_OK)
        return chat ? KPO_ERR : error_prefix(err, "%s: ", d->chat_template.source);
    if (reward_kind_parse(reward ? reward : d->reward.value, &c->sampling.reward, err) != KPO_OK)
        return reward ? KPO_ERR : error_prefix(err, "%s: ", d->reward.source);
    /* The run's grader goes with program, whether the run or --reward chose it. */
    if (c->sampling.reward == REWARD_PROGRAM && !c->sampling.reward_program &&
        d->reward_program.value[0])
        c->sampling.reward_program = d->reward_program.value;
    if ((c->sampling.reward == REWARD_PROGRAM) != (c->sampling.reward_program != NULL))
        return error_set(err, "kpo eval: --reward-program CMD goes with --reward program, and "
                              "only there");
    c->given_prompt_template = cli_get(&SPEC, "prompt-template") != NULL;
    c->given_chat_template = chat != NULL;
    c->given_reward = reward != NULL;
    c->given_reward_program = cli_get(&SPEC, "reward-program") != NULL;
    c->given_arith_difficulty = cli_get(&SPEC, "arith-difficulty") != NULL;
    c->dump_path = cli_get(&SPEC, "dump");
    if (c->dump_path && file_exists(c->dump_path))
        return error_set(err, "--dump %s: already exists; refusing to overwrite it",
                         c->dump_path);
    if (model_device_parse(device ? device : "cpu", &c->device, err) != KPO_OK)
        return error_prefix(err, "--");
    if (read_gpu_paths(&c->gpu, err) != KPO_OK)
        return KPO_ERR;
    if (!file_exists(c->model_dir))
        return error_set(err, "--model %s: no such directory", c->model_dir);
    if (file_exists(c->out_path))
        return error_set(err, "--out %s: already exists; refusing to overwrite an eval file",
                         c->out_path);
    return train_tokenizer_resolve(cli_get(&SPEC, "tokenizer"), c->model_dir, c->tokenizer_name,
                                   sizeof c->tokenizer_name, err);
}

int cmd_eval(int argc, char **argv)
{
    const char *positional[1];
    size_t n_positional;
    int wants_help = 0;
    kpo_error err;
    int parsed = cli_parse(&SPEC, argc, argv, positional, 0, &n_positional, &wants_help, &err);
    if (parsed == KPO_OK && wants_help) {
        cli_print_help(stdout, &SPEC);
        return 0;
    }
    int rank, size;
    comm_world_init(&argc, &argv, &rank, &size);
    eval_settings c;
    int status = parsed;
    if (status == KPO_OK)
        status = read_settings(argc, argv, &c, &err);
    const int exit_status = eval_run(&c, status, rank, size, &err);
    comm_world_finalize();
    return exit_status;
}
