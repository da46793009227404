/* The filter's command-line options, shared by `kpo filter` and
 * `kpo simulate` so both spell and check them the same way. */
#ifndef KPO_CLI_FILTER_OPTIONS_H
#define KPO_CLI_FILTER_OPTIONS_H

#include "cli/cli_options.h"
#include "filter/filter.h"

#define FILTER_CLI_OPTIONS                                                                   \
    {"q", "Q", "process noise variance Q >= 0 (default 1e-6)", NULL},                        \
    {"v", "V", "measurement noise variance V > 0 (default 1)", NULL},                        \
    {"mode", "MODE", "saturation: none, sigma, sqrtv, iterated, adaptive (default none; "     \
                     "kpo filter also takes official)", NULL},                               \
    {"kappa", "K", "saturation threshold multiplier > 0 (default 3)", NULL},                 \
    {"rho0", "X", "initial state of each response (default 0)", NULL},                       \
    {"p0", "P", "initial variance of each response (default 0)", NULL},                      \
    {"iterations", "N", "iterated: scaled-gradient iterations (default 3)", NULL},           \
    {"c-state", "C", "iterated: state-residual threshold c_s (default: kappa)", NULL},       \
    {"step-size", "ETA", "iterated: step size in (0, 2) (default 1)", NULL},                 \
    {"no-scale-covariance", NULL, "iterated: plain (1-K) P covariance update", NULL},        \
    {"lambda-bound", "L", "adaptive: forgetting factor of the bound (default 0.9)", NULL},   \
    {"lambda-energy", "L", "adaptive: forgetting factor of the energy (default 0.9)", NULL}

/* Reads the options above into cfg (starting from the defaults) and
 * validates the result. With official not NULL, --mode official is
 * accepted: *official is set and cfg gets mode none (the exact twin). */
int filter_options_read(const cli_command_spec *spec, filter_config *cfg, int *official,
                        kpo_error *err);

/* "q=0.01 v=1 mode=sigma kappa=3 ..." for headers and run-file configs. */
void filter_options_describe(const filter_config *cfg, char *out, size_t size);

#endif
