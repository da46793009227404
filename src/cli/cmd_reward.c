#include "cli/commands.h"

int cmd_reward(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return command_fail("kpo reward: not built yet");
}
