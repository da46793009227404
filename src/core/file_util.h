/* Small file helpers shared by the commands. */
#ifndef KPO_CORE_FILE_UTIL_H
#define KPO_CORE_FILE_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

bool file_exists(const char *path);

/* Reads a whole file into a NUL-terminated malloc'ed buffer. */
int file_read_all(const char *path, char **text, size_t *length, kpo_error *err);

/* "dir/run.h5" -> "dir/run.h5.tmp.<pid>": where a writer puts a file before
 * renaming it into place, so a reader never sees a half-written one. */
void file_temp_path(const char *path, char *out, size_t size);

#endif
