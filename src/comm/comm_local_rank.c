/* Which GPU a rank owns depends on its index within its node, which
 * launchers export; MPI can tell when none did. */
#include <stdlib.h>

#include "comm/comm_nccl.h"

static int env_index(const char *name)
{
    const char *text = getenv(name);
    if (!text || !*text)
        return -1;
    char *end;
    long value = strtol(text, &end, 10);
    return *end == '\0' && value >= 0 && value < 1 << 20 ? (int)value : -1;
}

int comm_local_rank(MPI_Comm world)
{
    /* Every rank takes the same branch only if the launcher set the variable
     * for all of them, which launchers do; the MPI fallback is collective. */
    int from_env = env_index("OMPI_COMM_WORLD_LOCAL_RANK");
    if (from_env < 0)
        from_env = env_index("SLURM_LOCALID");
    int have = from_env >= 0, all_have = 0;
    MPI_Allreduce(&have, &all_have, 1, MPI_INT, MPI_MIN, world);
    if (all_have)
        return from_env;
    MPI_Comm node;
    int rank = 0;
    MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &rank);
    MPI_Comm_free(&node);
    return rank;
}
