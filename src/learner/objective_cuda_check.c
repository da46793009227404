/* The device objective's host-side argument checks (objective_cuda.h),
 * compiled in every build so they are tested without a GPU. */
#include "learner/objective_cuda.h"

#include <math.h>
#include <stddef.h>

static int check_responses(const objective_cuda_batch *b, kpo_error *err)
{
    if (b->offsets[0] != 0)
        return error_set(err, "objective_cuda: offsets[0] is %lld, must be 0",
                         (long long)b->offsets[0]);
    int64_t next_free_row = 0; /* rows below this belong to an earlier response */
    for (int64_t r = 0; r < b->n_responses; r++) {
        const int64_t n = b->offsets[r + 1] - b->offsets[r];
        if (n < 0)
            return error_set(err, "objective_cuda: offsets[%lld] (%lld) is below offsets[%lld] "
                                  "(%lld)", (long long)(r + 1), (long long)b->offsets[r + 1],
                             (long long)r, (long long)b->offsets[r]);
        if (n == 0)
            continue;
        if (b->rows[r] < next_free_row || b->rows[r] > b->n_rows - n)
            return error_set(err, "objective_cuda: rows[%lld] = %lld: response %lld's %lld "
                                  "tokens must lie in rows [%lld, %lld)", (long long)r,
                             (long long)b->rows[r], (long long)r, (long long)n,
                             (long long)next_free_row, (long long)b->n_rows);
        next_free_row = b->rows[r] + n;
    }
    return KPO_OK;
}

int objective_cuda_check(const objective_config *cfg, const objective_cuda_batch *b,
                         objective_normalizer norm, kpo_error *err)
{
    if (!cfg || !b)
        return error_set(err, "objective_cuda: missing %s", cfg ? "batch" : "config");
    if (objective_config_validate(cfg, err) != KPO_OK)
        return KPO_ERR;
    if (!(norm.responses > 0) || !(norm.tokens > 0))
        return error_set(err, "objective: the global batch has no responses or tokens");
    if (b->n_responses < 0 || b->n_rows < 0)
        return error_set(err, "objective_cuda: negative n_responses (%lld) or n_rows (%lld)",
                         (long long)b->n_responses, (long long)b->n_rows);
    if (!b->offsets || !b->rows || !b->advantages || !b->logp_old)
        return error_set(err, "objective_cuda: missing host array %s",
                         !b->offsets ? "offsets" : !b->rows ? "rows"
                         : !b->advantages ? "advantages" : "logp_old");
    if (!b->d_logp || !b->d_dlogp)
        return error_set(err, "objective_cuda: missing device array %s",
                         !b->d_logp ? "d_logp" : "d_dlogp");
    if (check_responses(b, err) != KPO_OK)
        return KPO_ERR;
    const int64_t n_tokens = b->offsets[b->n_responses];
    if (b->logp_out && (b->logp_out_tokens < 0 || b->logp_out_tokens > n_tokens))
        return error_set(err, "objective_cuda: logp_out_tokens (%lld) is outside [0, %lld]",
                         (long long)b->logp_out_tokens, (long long)n_tokens);
    return KPO_OK;
}
