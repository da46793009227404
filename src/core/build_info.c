/* What this binary was built with (build_info.h), for kpo info and the
 * run file's attributes. */
#include "core/build_info.h"

#include <stdio.h>

#include "kpo_config.h"

static const char *yes_no(int flag)
{
    return flag ? "yes" : "no";
}

void build_info_describe(char *out, size_t size)
{
    snprintf(out, size, "kpo %s (%s, %s; mpi=%s hdf5=%s cuda=%s nccl=%s)", KPO_VERSION,
             KPO_COMPILER, KPO_BUILDTYPE, yes_no(KPO_HAVE_MPI), yes_no(KPO_HAVE_HDF5),
             yes_no(KPO_HAVE_CUDA), yes_no(KPO_HAVE_NCCL));
}
