/* What the run-file writer and reader share. */
#ifndef KPO_IO_RUNFILE_INTERNAL_H
#define KPO_IO_RUNFILE_INTERNAL_H

#include <hdf5.h>

#include "core/error.h"

/* Dataset at "group/name" under the file, or -1 when absent. */
hid_t runfile_open_dataset(hid_t file, const char *path);

/* Opens path as a kpo run file (format attribute and version checked);
 * -1 with err naming the file otherwise. */
hid_t runfile_open_hdf5(const char *path, unsigned flags, kpo_error *err);

#endif
