/* File writing shared by the checkpoint writers: a reader never sees a torn
 * file because everything goes to a temporary name that is renamed at the end. */
#ifndef KPO_MODEL_MODEL_IO_UTIL_H
#define KPO_MODEL_MODEL_IO_UTIL_H

#include <stddef.h>
#include <stdio.h>

#include "core/error.h"

int model_io_write_atomic(const char *path, const void *data, size_t size, kpo_error *err);

/* Opens path's temporary sibling for writing; finish with
 * model_io_commit (flush, fsync, rename) or model_io_abort (remove). */
FILE *model_io_begin(const char *path, char *temp, size_t temp_size, kpo_error *err);
int model_io_commit(FILE *f, const char *temp, const char *path, kpo_error *err);
void model_io_abort(FILE *f, const char *temp);

#endif
