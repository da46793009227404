/* The filter's command-line options, shared by `kpo filter` and
 * `kpo simulate` so both spell and check them the same way. They are the
 * rows of the filter's parameter table (filter/filter_params.h) that name
 * an option: names, help and defaults come from there. */
#ifndef KPO_CLI_FILTER_OPTIONS_H
#define KPO_CLI_FILTER_OPTIONS_H

#include "cli/cli_options.h"
#include "filter/filter.h"

/* Room for the filter's options in a command's option array. */
#define FILTER_CLI_OPTIONS_MAX 24

/* Writes the filter's options (at most max) to out, followed by the n_extra
 * options of extra; returns how many were written in all. */
size_t filter_cli_options(cli_option *out, size_t max, const cli_option *extra,
                          size_t n_extra);

/* Reads the options above into cfg (starting from the defaults) and
 * validates the result. With official not NULL, --mode official is
 * accepted: *official is set and cfg gets mode none (the exact twin). */
int filter_options_read(const cli_command_spec *spec, filter_config *cfg, int *official,
                        kpo_error *err);

/* "q=0.01 v=1 mode=sigma kappa=3 ..." for headers and run-file configs. */
void filter_options_describe(const filter_config *cfg, char *out, size_t size);

#endif
