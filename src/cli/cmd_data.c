#include "cli/commands.h"

int cmd_data(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return command_fail("kpo data: not built yet");
}
