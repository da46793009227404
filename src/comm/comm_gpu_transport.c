/* The run.gpu_comm decision: NCCL or host-staged MPI per communicator,
 * from which ranks share a GPU. Pure, so it is tested without MPI or a
 * GPU; see comm_gpu_transport.h. */
#include "comm/comm_gpu_transport.h"

#include <string.h>

static const char *const MODE_NAMES[] = {"auto", "nccl", "host"};

int comm_gpu_mode_parse(const char *text, comm_gpu_mode *out, kpo_error *err)
{
    for (int i = 0; i < (int)(sizeof MODE_NAMES / sizeof *MODE_NAMES); i++)
        if (text && strcmp(text, MODE_NAMES[i]) == 0) {
            *out = (comm_gpu_mode)i;
            return KPO_OK;
        }
    return error_set(err, "gpu_comm = '%s': expected auto, nccl or host", text ? text : "");
}

const char *comm_gpu_mode_name(comm_gpu_mode mode)
{
    return (unsigned)mode < sizeof MODE_NAMES / sizeof *MODE_NAMES ? MODE_NAMES[mode] : "?";
}

const char *comm_gpu_transport_name(comm_gpu_transport transport)
{
    return transport == COMM_GPU_TRANSPORT_NCCL ? "NCCL" : "host memory over MPI";
}

/* The first pair of members on one GPU, lowest world ranks first. */
static void find_shared(const char *const *ids, const int *members, int n, int *a, int *b)
{
    *a = *b = -1;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            if (members[j] == members[i] || strcmp(ids[members[i]], ids[members[j]]) != 0)
                continue;
            int lo = members[i] < members[j] ? members[i] : members[j];
            int hi = members[i] < members[j] ? members[j] : members[i];
            if (*a < 0 || lo < *a || (lo == *a && hi < *b)) {
                *a = lo;
                *b = hi;
            }
        }
}

int comm_gpu_choose_transport(const char *const *ids, const int *members, int n,
                              comm_gpu_mode mode, int nccl_built, const char *what,
                              comm_gpu_choice *out, kpo_error *err)
{
    find_shared(ids, members, n, &out->shared_a, &out->shared_b);
    const int shared = out->shared_a >= 0;
    out->transport = COMM_GPU_TRANSPORT_HOST;
    if (mode == COMM_GPU_HOST)
        return KPO_OK;
    if (mode == COMM_GPU_NCCL && !nccl_built)
        return error_set(err, "run.gpu_comm = nccl: kpo was built without NCCL (use auto or "
                              "host)");
    if (mode == COMM_GPU_NCCL && shared)
        return error_set(err, "run.gpu_comm = nccl: %s ranks %d and %d share GPU %s, and NCCL "
                              "needs one GPU per rank (use auto or host, or fewer ranks per GPU)",
                         what, out->shared_a, out->shared_b, ids[out->shared_a]);
    if (!shared && nccl_built)
        out->transport = COMM_GPU_TRANSPORT_NCCL;
    return KPO_OK;
}

int comm_gpu_share_turn(const char *const *ids, int rank)
{
    int turn = 0;
    for (int r = 0; r < rank; r++)
        turn += strcmp(ids[r], ids[rank]) == 0;
    return turn;
}

int comm_gpu_share_first(const char *const *ids, int rank)
{
    for (int r = 0; r < rank; r++)
        if (strcmp(ids[r], ids[rank]) == 0)
            return r;
    return rank;
}

int comm_gpu_share_rounds(const char *const *ids, int n_ranks)
{
    int rounds = 0;
    for (int r = 0; r < n_ranks; r++) {
        int turn = comm_gpu_share_turn(ids, r);
        rounds = turn + 1 > rounds ? turn + 1 : rounds;
    }
    return rounds;
}
