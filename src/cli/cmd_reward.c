/* kpo reward: score one response (stdin) against a gold answer, to inspect
 * what a reward function sees. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "rollout/reward.h"
#include "tokenizer/text_buf.h"

static char *read_stdin(void)
{
    text_buf b;
    text_buf_init(&b);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        text_buf_append(&b, chunk, n);
    return ferror(stdin) ? (text_buf_free(&b), NULL) : text_buf_take(&b);
}

int cmd_reward(int argc, char **argv)
{
    cli_option options[] = {
        {"kind", "K", "dapo, boxed or kpo (required)", NULL},
        {"gold", "ANSWER", "the gold answer (required)", NULL},
        {"zero-one", NULL, "dapo: score a wrong answer 0 instead of -1", NULL},
        {"explain", NULL, "also print whether an answer was found and the prediction", NULL},
    };
    cli_command_spec spec = {"reward", "--kind K --gold ANSWER [--zero-one] [--explain] < RESPONSE",
                             "Print the reward of the response on stdin against the gold answer.",
                             CLI_OPTIONS(options)};
    int status = command_start_options(&spec, argc, argv);
    if (status >= 0)
        return status;
    kpo_error err;
    reward_kind kind;
    if (!cli_get(&spec, "kind") || !cli_get(&spec, "gold"))
        return command_fail("kpo reward: --kind and --gold are required");
    if (reward_kind_parse(cli_get(&spec, "kind"), &kind, &err) != KPO_OK)
        return command_fail(err.message);
    char *response = read_stdin();
    if (!response)
        return command_fail("kpo reward: reading stdin failed");
    reward_options opt = {.zero_one = cli_get(&spec, "zero-one") != NULL};
    reward_result result;
    status = reward_score(kind, response, cli_get(&spec, "gold"), &opt, &result, &err);
    free(response);
    if (status != KPO_OK)
        return command_fail(err.message);
    printf("%g\n", result.score);
    if (cli_get(&spec, "explain"))
        printf("correct %d\nextracted %d\npred %s\n", result.correct, result.extracted,
               result.pred);
    return 0;
}
