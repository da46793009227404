/* The order in which a rollout batch's responses reach the learner, which
 * decides what each of the M mini-batches holds (docs/minibatch-order.md).
 *
 * learner_step splits the batch it is given into contiguous mini-batches
 * [k N / M, (k+1) N / M) and each of those into L contiguous learner
 * shares. Two orders feed that split:
 *
 *   prompt    the batch as the rollout wrote it: prompt p's G responses
 *             contiguous, prompts in order, so mini-batch k holds whole
 *             groups (kpo's original behaviour);
 *   balanced  what verl's trainer.balance_batch (on by default, and on in
 *             the KPO paper's script) does before the actor splits its
 *             data: Karmarkar-Karp partitions the responses over D
 *             data-parallel ranks by an attention-FLOPs estimate of their
 *             lengths, each rank's part is sorted and folded, and every
 *             rank then cuts its part into M mini-batches. A prompt's
 *             responses end up spread over mini-batches.
 *
 * The balanced permutation lists, for k = 0..M-1 and rank r = 0..D-1, the
 * k-th mini-batch slice of rank r's part, so kpo's contiguous split gives
 * verl's mini-batch membership for any number of learners, and learner l
 * trains on exactly verl rank l's responses when L = D.
 *
 * Permutations are gathers: position j of the reordered batch holds the
 * response at position perm[j] of the original. */
#ifndef KPO_LEARNER_MINIBATCH_ORDER_H
#define KPO_LEARNER_MINIBATCH_ORDER_H

#include <stdint.h>

#include "core/error.h"
#include "learner/rl_batch.h"

typedef enum minibatch_order_kind {
    MINIBATCH_ORDER_PROMPT = 0,
    MINIBATCH_ORDER_BALANCED,
} minibatch_order_kind;

/* "prompt" | "balanced". */
int minibatch_order_parse(const char *name, minibatch_order_kind *kind, kpo_error *err);
const char *minibatch_order_name(minibatch_order_kind kind);

/* verl's calculate_workload: 24576 s + s^2 for a sequence of s tokens, a
 * dense-transformer FLOPs estimate (12 h^2 s + 2 h s^2 at h = 4096, divided
 * by 2h), not a token count. Exact in int64 for s below about 3e9. */
int64_t minibatch_order_workload(int64_t seq_len);

/* verl's karmarkar_karp with equal_size = True followed by the ascending
 * sort of get_seqlen_balanced_partitions: n values into k parts of n / k
 * each. parts: [k][n / k], part r's indices ascending; part 0 is the
 * heaviest set of the final differencing state, as in verl. Ties are
 * broken exactly as verl's Python does (heapq, stable sorts). */
int minibatch_order_partition(const int64_t *values, int64_t n, int k, int64_t *parts,
                              kpo_error *err);

/* The balanced order of n responses whose sequences (prompt + response
 * tokens, verl's attention_mask sum) have lengths seq_len[n], for
 * dp_size data-parallel ranks and `minibatches` mini-batches. n must be a
 * multiple of dp_size * minibatches. perm: [n]. */
int minibatch_order_balanced(const int64_t *seq_len, int64_t n, int dp_size, int minibatches,
                             int64_t *perm, kpo_error *err);

/* The permutation of `kind` for batch b (identity for prompt). perm: [b->n]. */
int minibatch_order_of_batch(const rl_batch *b, minibatch_order_kind kind, int dp_size,
                             int minibatches, int64_t *perm, kpo_error *err);

/* out = b reordered by perm (a new batch; every per-sequence field and the
 * tokens move together). perm must be a permutation of 0..b->n-1. */
int minibatch_order_apply(const rl_batch *b, const int64_t *perm, rl_batch *out,
                          kpo_error *err);

/* The same in place: b's arrays are replaced by reordered ones. */
int minibatch_order_apply_inplace(rl_batch *b, const int64_t *perm, kpo_error *err);

/* inverse[perm[j]] = j: applying inverse after perm restores the order. */
void minibatch_order_invert(const int64_t *perm, int64_t n, int64_t *inverse);

#endif
