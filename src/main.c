/* kpo: one binary, one subcommand per job. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "core/build_info.h"

static void print_usage(FILE *out)
{
    char build[512];
    build_info_describe(build, sizeof build);
    fprintf(out, "%s\n\nusage: kpo COMMAND [options]   (kpo COMMAND --help for its options)\n\n"
                 "commands:\n", build);
    for (int k = 0; k < N_COMMANDS; k++)
        fprintf(out, "  %-10s %s\n", COMMANDS[k].name, COMMANDS[k].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return 1;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        char build[512];
        build_info_describe(build, sizeof build);
        printf("%s\n", build);
        return 0;
    }
    for (int k = 0; k < N_COMMANDS; k++)
        if (strcmp(argv[1], COMMANDS[k].name) == 0)
            return COMMANDS[k].run(argc - 2, argv + 2);
    fprintf(stderr, "kpo: unknown command '%s' (kpo --help lists them)\n", argv[1]);
    return 1;
}
