/* kpo: one binary, one subcommand per job. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* OpenMP's default is to spin idle worker threads; with MPI ranks sharing
 * cores (and OpenBLAS calls between parallel regions) the spinning starves
 * the threads doing work: decode on the 50M model ran 8-15x slower on 2
 * cores. libgomp reads OMP_WAIT_POLICY when it loads, before main, so when
 * the user has not chosen a policy kpo sets "passive" and executes itself
 * again (before MPI or any thread starts). */
static void ensure_passive_openmp_wait(char **argv)
{
    if (getenv("OMP_WAIT_POLICY"))
        return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    /* exec failed (no /proc): carry on with the default policy. */
}

int main(int argc, char **argv)
{
    ensure_passive_openmp_wait(argv);
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
