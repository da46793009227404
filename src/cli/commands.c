/* The subcommand table main.c dispatches on, and what every subcommand
 * shares (commands.h): starting on its options (--help, parse errors) and
 * failing with one line on stderr. */
#include "cli/commands.h"

#include <stdio.h>

const command_entry COMMANDS[] = {
    {"info", "what this build supports and which GPUs it sees", cmd_info},
    {"train", "RL post-training (KPO, IS-KPO, GRPO, GSPO) under mpirun or srun", cmd_train},
    {"gain", "Kalman gain, memory and saturation threshold for given Q, V, P0, kappa", cmd_gain},
    {"filter", "replay the filter on recorded log-ratios with other parameters", cmd_filter},
    {"diag", "innovation statistics of runs: the paper's Table 2, side by side", cmd_diag},
    {"stats", "compare evaluations: pooled z-test, paired t-test over problems, bootstrap CI, gap recovered", cmd_stats},
    {"simulate", "write a run file from synthetic heavy-tailed log-ratio streams", cmd_simulate},
    {"tokenize", "encode text to token ids (or --decode ids) with a model's tokenizer", cmd_tokenize},
    {"data", "check a JSONL dataset: records, fields, bad lines (kpo data check FILE)", cmd_data},
    {"reward", "score a response (stdin) against a gold answer with a reward function", cmd_reward},
    {"model", "random Qwen3 checkpoint (model init) or describe one (model list)", cmd_model},
    {"logprobs", "per-token log-probs and entropies of a checkpoint on token sequences", cmd_logprobs},
    {"generate", "continue token ids with the KV-cache decoder (greedy or sampled)", cmd_generate},
    {"sft", "supervised warm start on gold answers in the reward's format", cmd_sft},
    {"eval", "k samples per problem on benchmarks: avg@k, pass@k, per-problem counts (HDF5)", cmd_eval},
    {"export", "a checkpoint as a Hugging Face model directory (shards, bf16, tokenizer)", cmd_export},
};
const int N_COMMANDS = sizeof COMMANDS / sizeof COMMANDS[0];

int command_fail(const char *message)
{
    fprintf(stderr, "kpo: %s\n", message);
    return 1;
}

int command_start(const cli_command_spec *spec, int argc, char **argv, const char **positional,
                  size_t max_positional, size_t *n_positional)
{
    kpo_error err;
    int wants_help = 0;
    if (cli_parse(spec, argc, argv, positional, max_positional, n_positional, &wants_help, &err) !=
        KPO_OK)
        return command_fail(err.message);
    if (wants_help) {
        cli_print_help(stdout, spec);
        return 0;
    }
    return -1;
}

int command_start_options(const cli_command_spec *spec, int argc, char **argv)
{
    size_t n_positional;
    return command_start(spec, argc, argv, NULL, 0, &n_positional);
}

int command_start_one(const cli_command_spec *spec, int argc, char **argv, const char **arg,
                      const char *missing)
{
    size_t n_positional;
    int status = command_start(spec, argc, argv, arg, 1, &n_positional);
    if (status >= 0)
        return status;
    if (n_positional != 1)
        return command_fail(missing);
    return -1;
}
