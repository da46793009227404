/* src/core: what every part builds on.
 * defines:
 *   error                      kpo_error: KPO_OK/KPO_ERR and one-line messages (this header)
 *   parse                      strict text-to-number conversion
 *   config                     typed INI configuration: schema, files, --set, dump
 *   param_table                a part's parameters as one table of INI keys
 *   rng, philox.h              counter-based random streams (Philox4x32-10), shared with CUDA
 *   file_util                  file and directory helpers: read, temp names, mkdir -p, fsync,
 *                              rm -rf
 *   timer                      monotonic wall-clock seconds
 *   build_info                 what the binary was built with
 *   hostdev.h                  inline functions compiled for both the CPU and CUDA
 *   cuda_check.h               CUDA runtime status to kpo_error */
/* Error reporting for library code: functions return KPO_OK or KPO_ERR and
 * fill a kpo_error with one line that names the file, line, key or tensor at
 * fault. Only main() prints and exits. */
#ifndef KPO_CORE_ERROR_H
#define KPO_CORE_ERROR_H

#include <stddef.h>

enum { KPO_OK = 0, KPO_ERR = -1 };

typedef struct kpo_error {
    char message[1024];
} kpo_error;

#if defined(__GNUC__)
#define KPO_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define KPO_PRINTF(fmt_index, first_arg)
#endif

/* Sets the message (when err is not NULL) and returns KPO_ERR, so callers can
 * write `return error_set(err, "...")`. */
int error_set(kpo_error *err, const char *fmt, ...) KPO_PRINTF(2, 3);

/* Prefixes an existing message with more context ("run.h5: " + message). */
int error_prefix(kpo_error *err, const char *fmt, ...) KPO_PRINTF(2, 3);

void error_clear(kpo_error *err);

#endif
