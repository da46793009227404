/* The `program` reward: a user's grader run as one long-lived process
 * (`/bin/sh -c COMMAND`) and spoken to over pipes, one line each way per
 * response (docs/text.md, "program"):
 *
 *   kpo -> program: {"response": "...", "gold": "...", "problem": "..."|null}\n
 *   program -> kpo: 0.5\n   or   {"score": 1, "correct": true, "pred": "42"}\n
 *
 * Starting a process per response would cost more than most graders, so the
 * program is started once and kept; its stderr is kpo's. Every failure
 * names the program: it died (with its exit status), gave no answer within
 * the per-call timeout (it is killed), or answered something that is not a
 * score. After a failure the grader is not asked again. */
#ifndef KPO_ROLLOUT_REWARD_PROGRAM_H
#define KPO_ROLLOUT_REWARD_PROGRAM_H

#include "core/error.h"
#include "rollout/reward.h"

/* What a call may wait for an answer when none is configured. */
#define REWARD_PROGRAM_DEFAULT_TIMEOUT 30.0

typedef struct reward_program reward_program;

/* Starts `/bin/sh -c command` with its stdin and stdout on pipes. From
 * then on SIGPIPE is ignored in this process, so a grader that dies turns
 * a write into an error instead of ending kpo. timeout_s <= 0: the default. */
int reward_program_start(const char *command, double timeout_s, reward_program **out,
                         kpo_error *err);

/* One request and its answer. problem may be NULL (sent as null). */
int reward_program_ask(reward_program *p, const char *response, const char *gold,
                       const char *problem, reward_result *out, kpo_error *err);

/* Closes the program's stdin (its cue to exit), waits up to 2 s, then
 * kills its process group. NULL is fine. */
void reward_program_close(reward_program *p);

/* The process-wide grader for command, started on first use and closed at
 * exit; a different command replaces it. What reward_score uses, so every
 * caller of the reward (kpo reward, kpo eval, the training rollout) needs
 * only the command line in its reward_options. */
int reward_program_shared(const char *command, double timeout_s, reward_program **out,
                          kpo_error *err);

/* Parses one answer line (without its newline): a number, or a JSON object
 * with a number "score" and optional bool "correct" (default: score > 0),
 * string "pred" and bool "extracted" (default true). Errors say what is
 * wrong with the line. */
int reward_program_parse_answer(const char *line, reward_result *out, kpo_error *err);

#endif
