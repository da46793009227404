/* src/eval: kpo eval, and the sampling loop kpo sft shares.
 * defines:
 *   eval_run                   kpo eval's pipeline: load, count, report (this header)
 *   eval_sample                sample k per problem, score, count correct: shared with kpo sft
 *   eval_count                 a rank's chunks of a benchmark counted
 *   eval_bench                 benchmarks: NAME=FILE.jsonl or arith, prompts encoded
 *   eval_defaults              templates and reward from the run that wrote the checkpoint
 *   eval_device                --device cpu|cuda: the model backend
 *   eval_dump                  --dump: every response as JSONL */
/* kpo eval's pipeline behind the command line (cli/cmd_eval.c parses and
 * checks the options): load the tokenizer, model and benchmarks, count the
 * correct samples per problem over the ranks, and on rank 0 print the
 * table and write the eval file (and the --dump). */
#ifndef KPO_EVAL_EVAL_RUN_H
#define KPO_EVAL_EVAL_RUN_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "eval/eval_bench.h"
#include "eval/eval_count.h"
#include "eval/eval_defaults.h"
#include "model/model_backend.h"

enum { EVAL_MAX_BENCHES = 32 };

/* Everything the command line says, checked. */
typedef struct eval_settings {
    const char *model_dir, *out_path;
    const char *dump_path;  /* --dump: every response as JSONL, or NULL */
    const char *stop;       /* --stop: model | chat | ids/tokens (data/stop_tokens.h) */
    char tokenizer_name[4096];
    eval_sampling sampling;
    eval_prompt_options prompts;
    eval_defaults defaults; /* what the run used, for the options not given */
    model_device device;
    gpu_model_options gpu;  /* --device cuda: the decode paths (decode_attention,
                               prefill_attention, decode_graphs); the rest unused */
    const char *bench_specs[EVAL_MAX_BENCHES];
    size_t n_benches;
    /* The defaultable options the command line gave (print_settings says
     * where each setting came from). */
    bool given_prompt_template, given_chat_template, given_reward, given_reward_program,
        given_arith_difficulty;
} eval_settings;

/* Runs the evaluation on this rank (rank of size, comm_world_init's).
 * status: KPO_OK when c holds checked settings; otherwise err says why and
 * c is not read, but every rank still takes part in agreeing on the first
 * failure, which exactly one rank reports. Returns the exit status, 0 or 1. */
int eval_run(eval_settings *c, int status, int rank, int size, kpo_error *err);

#endif
