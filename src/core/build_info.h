/* What this binary was built with, for `kpo info` and run-file attributes. */
#ifndef KPO_CORE_BUILD_INFO_H
#define KPO_CORE_BUILD_INFO_H

#include <stddef.h>

/* One line: "kpo 0.1.0 (gcc 12.2.0, debugoptimized; mpi=yes hdf5=yes ...)". */
void build_info_describe(char *out, size_t size);

#endif
