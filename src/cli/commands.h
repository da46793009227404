/* src/cli: the command line; each command parses its options and calls its pipeline.
 * defines:
 *   commands                   the subcommand table and what commands share (this header)
 *   cli_options                the long-option parser
 *   cmd_*.c                    one file per subcommand (cmd_sft.c calls learner/sft_run.h,
 *                              cmd_eval.c eval/eval_run.h, cmd_train.c train/train_loop.h)
 *   filter_options             the filter options kpo filter and kpo simulate share
 *   filter_official_replay     kpo filter --mode official
 *   innov_table                the paper's Table 2 printed */
/* The `kpo` subcommands. Each takes the arguments after its name and
 * returns the process exit status; errors go to stderr as one line. */
#ifndef KPO_CLI_COMMANDS_H
#define KPO_CLI_COMMANDS_H

#include <stddef.h>

#include "cli/cli_options.h"

typedef int (*command_main)(int argc, char **argv);

typedef struct command_entry {
    const char *name;
    const char *summary;
    command_main run;
} command_entry;

extern const command_entry COMMANDS[];
extern const int N_COMMANDS;

int cmd_info(int argc, char **argv);
int cmd_gain(int argc, char **argv);
int cmd_filter(int argc, char **argv);
int cmd_diag(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_simulate(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_reward(int argc, char **argv);
int cmd_model(int argc, char **argv);
int cmd_logprobs(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_sft(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_export(int argc, char **argv);

/* Shared by the commands: prints "kpo: <message>" and returns exit code 1
 * for bad input (2 for usage errors is not distinguished: one failure code). */
int command_fail(const char *message);

/* Parses a subcommand's arguments. Returns -1 when the command should go
 * on; otherwise the exit status to return at once (0 after --help, 1 after
 * printing the error). */
int command_start(const cli_command_spec *spec, int argc, char **argv, const char **positional,
                  size_t max_positional, size_t *n_positional);
/* command_start for a command that takes no positional arguments. */
int command_start_options(const cli_command_spec *spec, int argc, char **argv);
/* command_start for a command that takes exactly one positional argument:
 * stores it in *arg, or fails with `missing` when there is not exactly one. */
int command_start_one(const cli_command_spec *spec, int argc, char **argv, const char **arg,
                      const char *missing);

#endif
