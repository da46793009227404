/* A small long-option parser for the subcommands: `--name value`,
 * `--name=value` and `--flag`, positional arguments in between. Unknown
 * options are errors that list the valid ones. */
#ifndef KPO_CLI_CLI_OPTIONS_H
#define KPO_CLI_CLI_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

#include "core/error.h"

typedef struct cli_option {
    const char *name;    /* without the leading "--" */
    const char *metavar; /* NULL for a flag that takes no value */
    const char *help;
    const char *value;   /* set by cli_parse: the value, "1" for a flag, NULL if absent */
} cli_option;

typedef struct cli_command_spec {
    const char *name;     /* "filter" */
    const char *synopsis; /* "RUN.h5 --q Q --v V [options]" */
    const char *summary;  /* one sentence */
    cli_option *options;
    size_t n_options;
} cli_command_spec;

/* A spec's options and n_options from one array. */
#define CLI_OPTIONS(array) (array), sizeof(array) / sizeof((array)[0])

/* Fills each option's value and collects positional arguments. "--help"
 * sets *wants_help. */
int cli_parse(const cli_command_spec *spec, int argc, char **argv, const char **positional,
              size_t max_positional, size_t *n_positional, int *wants_help, kpo_error *err);

const char *cli_get(const cli_command_spec *spec, const char *name);

/* Every value of a repeatable option, in command-line order (cli_get gives
 * only the last); argv as given to cli_parse, which must have accepted it.
 * Returns how many, storing at most max in values. */
size_t cli_get_all(const cli_command_spec *spec, int argc, char **argv, const char *name,
                   const char **values, size_t max);

void cli_print_help(FILE *out, const cli_command_spec *spec);

/* Strict numeric accessors: absent -> fallback; malformed -> error naming
 * the option. */
int cli_get_double(const cli_command_spec *spec, const char *name, double fallback, double *out,
                   kpo_error *err);
int cli_get_int64(const cli_command_spec *spec, const char *name, long long fallback,
                  long long *out, kpo_error *err);

#endif
