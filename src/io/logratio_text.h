/* Plain-text log-ratio sequences for `kpo filter --input`: one response
 * per line, values separated by spaces or tabs; blank lines and lines
 * starting with '#' are skipped. */
#ifndef KPO_IO_LOGRATIO_TEXT_H
#define KPO_IO_LOGRATIO_TEXT_H

#include <stdint.h>

#include "core/error.h"
#include "io/runfile.h"

/* Reads path ("-" for stdin) into samples (step is the line number).
 * Errors name the file, line and column. */
int logratio_text_read(const char *path, runfile_samples *out, kpo_error *err);

#endif
