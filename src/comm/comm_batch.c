/* The rollout batch from the rollout ranks to every rank, and the weights
 * from learner rank 0 to the rollout ranks, over MPI (comm_batch.h). */
#include "comm/comm_batch.h"

#include <limits.h>
#include <stdlib.h>

enum { META_FIELDS = 5 }; /* length, prompt_len, group, reward, stopped */

int comm_allgather_batch(MPI_Comm comm, const rl_batch *local, rl_batch *full, kpo_error *err)
{
    int size;
    MPI_Comm_size(comm, &size);
    long long mine[2] = {local->n, local->n ? local->seq_offsets[local->n] : 0};
    long long *all = malloc((size_t)size * 2 * sizeof *all);
    int *meta_counts = malloc((size_t)size * sizeof *meta_counts);
    int *meta_displs = malloc((size_t)size * sizeof *meta_displs);
    int *token_counts = malloc((size_t)size * sizeof *token_counts);
    int *token_displs = malloc((size_t)size * sizeof *token_displs);
    double *meta = malloc((size_t)(local->n * META_FIELDS + 1) * sizeof *meta);
    double *all_meta = NULL;
    int status = (all && meta_counts && meta_displs && token_counts && token_displs && meta)
                     ? KPO_OK
                     : error_set(err, "batch gather: out of memory");
    if (status == KPO_OK &&
        MPI_Allgather(mine, 2, MPI_LONG_LONG, all, 2, MPI_LONG_LONG, comm) != MPI_SUCCESS)
        status = error_set(err, "batch gather: MPI_Allgather failed");
    long long n = 0, tokens = 0;
    for (int r = 0; status == KPO_OK && r < size; r++) {
        if ((n + all[2 * r]) * META_FIELDS > INT_MAX || tokens + all[2 * r + 1] > INT_MAX) {
            status = error_set(err, "batch gather: the step's batch exceeds 2^31 tokens");
            break;
        }
        meta_displs[r] = (int)(n * META_FIELDS);
        meta_counts[r] = (int)(all[2 * r] * META_FIELDS);
        token_displs[r] = (int)tokens;
        token_counts[r] = (int)all[2 * r + 1];
        n += all[2 * r];
        tokens += all[2 * r + 1];
    }
    if (status == KPO_OK)
        status = rl_batch_alloc(full, n, tokens, err);
    if (status == KPO_OK && !(all_meta = malloc((size_t)(n * META_FIELDS + 1) * sizeof *all_meta)))
        status = error_set(err, "batch gather: out of memory");
    if (status == KPO_OK) {
        for (int64_t i = 0; i < local->n; i++) {
            double *m = meta + i * META_FIELDS;
            m[0] = (double)(local->seq_offsets[i + 1] - local->seq_offsets[i]);
            m[1] = (double)local->prompt_len[i];
            m[2] = (double)local->group[i];
            m[3] = local->reward[i];
            m[4] = local->stopped[i];
        }
        if (MPI_Allgatherv(meta, (int)(local->n * META_FIELDS), MPI_DOUBLE, all_meta, meta_counts,
                           meta_displs, MPI_DOUBLE, comm) != MPI_SUCCESS ||
            MPI_Allgatherv(local->tokens, (int)mine[1], MPI_INT32_T, full->tokens, token_counts,
                           token_displs, MPI_INT32_T, comm) != MPI_SUCCESS)
            status = error_set(err, "batch gather: MPI_Allgatherv failed");
    }
    for (int64_t i = 0; status == KPO_OK && i < n; i++) {
        const double *m = all_meta + i * META_FIELDS;
        full->seq_offsets[i + 1] = full->seq_offsets[i] + (int64_t)m[0];
        full->prompt_len[i] = (int64_t)m[1];
        full->group[i] = (int64_t)m[2];
        full->reward[i] = m[3];
        full->stopped[i] = (uint8_t)m[4];
    }
    free(all);
    free(meta_counts);
    free(meta_displs);
    free(token_counts);
    free(token_displs);
    free(meta);
    free(all_meta);
    return status;
}

int comm_broadcast_weights(MPI_Comm comm, model_weights *weights, kpo_error *err)
{
    const int64_t piece = INT_MAX / 2;
    for (int64_t first = 0; first < weights->n_params; first += piece) {
        int count = (int)(weights->n_params - first < piece ? weights->n_params - first : piece);
        if (MPI_Bcast(weights->data + first, count, MPI_FLOAT, 0, comm) != MPI_SUCCESS)
            return error_set(err, "weight broadcast failed at parameter %lld", (long long)first);
    }
    return KPO_OK;
}
