/* Reorders a rollout batch so that kpo's contiguous mini-batch split holds
 * the responses verl's mini-batches hold (minibatch_order.h,
 * docs/minibatch-order.md). The partitioning is the largest differencing
 * method (Karmarkar-Karp) in verl's equal-size variant, with every tie
 * resolved as verl's Python resolves it, so the two agree response for
 * response, not just in balance. */
#include "learner/minibatch_order.h"

#include <stdlib.h>
#include <string.h>

int minibatch_order_parse(const char *name, minibatch_order_kind *kind, kpo_error *err)
{
    if (strcmp(name, "prompt") == 0)
        *kind = MINIBATCH_ORDER_PROMPT;
    else if (strcmp(name, "balanced") == 0)
        *kind = MINIBATCH_ORDER_BALANCED;
    else
        return error_set(err, "minibatch_order = '%s': expected prompt or balanced", name);
    return KPO_OK;
}

const char *minibatch_order_name(minibatch_order_kind kind)
{
    return kind == MINIBATCH_ORDER_BALANCED ? "balanced" : "prompt";
}

int64_t minibatch_order_workload(int64_t seq_len)
{
    return 24576 * seq_len + seq_len * seq_len;
}

/* One set of a differencing state: a list of item indices in insertion
 * order (linked through next[], so merging two sets is O(1) and keeps the
 * order verl's list.append gives), and the sum of their values. */
typedef struct kk_set {
    int64_t sum, count, head, tail; /* head/tail -1 when empty */
} kk_set;

typedef struct kk_work {
    const int64_t *values; /* [n] */
    int64_t *next;         /* [n] item after each in its set, -1 last */
    kk_set *sets;          /* [states][k], each state's sets heaviest first */
    int64_t *heap;         /* [states] state ids, a binary min-heap */
    int64_t heap_len;
    int k;
} kk_work;

/* verl's Set.__lt__ as a three-way comparison: by sum, then size, then the
 * item lists compared as Python compares lists of (index, value) tuples. */
static int kk_set_cmp(const kk_work *w, const kk_set *a, const kk_set *b)
{
    if (a->sum != b->sum)
        return a->sum < b->sum ? -1 : 1;
    if (a->count != b->count)
        return a->count < b->count ? -1 : 1;
    int64_t i = a->head, j = b->head;
    for (; i >= 0 && j >= 0; i = w->next[i], j = w->next[j]) {
        if (i != j)
            return i < j ? -1 : 1;
        if (w->values[i] != w->values[j])
            return w->values[i] < w->values[j] ? -1 : 1;
    }
    if (i < 0 && j < 0)
        return 0;
    return i < 0 ? -1 : 1; /* a prefix sorts first */
}

/* sorted(sets, reverse=True): heaviest first, and, as Python's reverse sort
 * does, sets that compare equal keep their order. Insertion sort: k is the
 * number of ranks. */
static void kk_sort_sets(const kk_work *w, kk_set *sets)
{
    for (int i = 1; i < w->k; i++) {
        kk_set item = sets[i];
        int j = i;
        while (j > 0 && kk_set_cmp(w, &sets[j - 1], &item) < 0) {
            sets[j] = sets[j - 1];
            j--;
        }
        sets[j] = item;
    }
}

static kk_set *kk_state(const kk_work *w, int64_t s)
{
    return w->sets + s * w->k;
}

/* verl's State.__lt__: the state with the larger spread (heaviest minus
 * lightest set) comes first; equal spreads, the one whose heaviest set is
 * greater. */
static int kk_state_less(const kk_work *w, int64_t a, int64_t b)
{
    const kk_set *sa = kk_state(w, a), *sb = kk_state(w, b);
    int64_t spread_a = sa[0].sum - sa[w->k - 1].sum, spread_b = sb[0].sum - sb[w->k - 1].sum;
    if (spread_a != spread_b)
        return spread_a > spread_b;
    return kk_set_cmp(w, &sb[0], &sa[0]) < 0;
}

/* CPython's heapq, step for step (heappush = append + _siftdown; heappop =
 * move the last item to the root + _siftup), so even states that compared
 * equal would leave in the order verl's heap gives them. */
static void kk_sift_down(kk_work *w, int64_t start, int64_t pos)
{
    int64_t item = w->heap[pos];
    while (pos > start) {
        int64_t parent = (pos - 1) >> 1;
        if (!kk_state_less(w, item, w->heap[parent]))
            break;
        w->heap[pos] = w->heap[parent];
        pos = parent;
    }
    w->heap[pos] = item;
}

static void kk_sift_up(kk_work *w, int64_t pos)
{
    int64_t end = w->heap_len, start = pos, item = w->heap[pos];
    int64_t child = 2 * pos + 1;
    while (child < end) {
        int64_t right = child + 1;
        if (right < end && !kk_state_less(w, w->heap[child], w->heap[right]))
            child = right;
        w->heap[pos] = w->heap[child];
        pos = child;
        child = 2 * pos + 1;
    }
    w->heap[pos] = item;
    kk_sift_down(w, start, pos);
}

static void kk_push(kk_work *w, int64_t s)
{
    w->heap[w->heap_len++] = s;
    kk_sift_down(w, 0, w->heap_len - 1);
}

static int64_t kk_pop(kk_work *w)
{
    int64_t last = w->heap[--w->heap_len];
    if (w->heap_len == 0)
        return last;
    int64_t top = w->heap[0];
    w->heap[0] = last;
    kk_sift_up(w, 0);
    return top;
}

/* State.merge: the i-th heaviest set of a takes the i-th lightest of b,
 * which is what drives the spread down. */
static void kk_merge(kk_work *w, int64_t a, int64_t b)
{
    kk_set *sa = kk_state(w, a), *sb = kk_state(w, b);
    for (int i = 0; i < w->k; i++) {
        kk_set *dst = &sa[i], *src = &sb[w->k - 1 - i];
        if (src->count == 0)
            continue;
        if (dst->count == 0)
            dst->head = src->head;
        else
            w->next[dst->tail] = src->head;
        dst->tail = src->tail;
        dst->count += src->count;
        dst->sum += src->sum;
    }
    kk_sort_sets(w, sa);
}

/* (value, index) pairs: verl sorts both its inputs and each rank's part by
 * this key, ascending. */
typedef struct kk_item {
    int64_t value, index;
} kk_item;

static int kk_item_cmp(const void *pa, const void *pb)
{
    const kk_item *a = pa, *b = pb;
    if (a->value != b->value)
        return a->value < b->value ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

static int int64_cmp(const void *pa, const void *pb)
{
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    return (a > b) - (a < b);
}

int minibatch_order_partition(const int64_t *values, int64_t n, int k, int64_t *parts,
                              kpo_error *err)
{
    if (k < 1 || n < k || n % k != 0)
        return error_set(err, "minibatch order: %lld responses do not split into %d equal "
                              "data-parallel parts", (long long)n, k);
    int64_t top = 0;
    for (int64_t i = 0; i < n; i++) {
        if (values[i] < 0)
            return error_set(err, "minibatch order: response %lld has negative workload %lld",
                             (long long)i, (long long)values[i]);
        top = values[i] > top ? values[i] : top;
    }
    if (top > INT64_MAX / n)
        return error_set(err, "minibatch order: workloads up to %lld over %lld responses "
                              "overflow a 64-bit sum", (long long)top, (long long)n);
    const int64_t states = n / k;
    kk_work w = {.values = values, .k = k};
    kk_item *sorted = malloc((size_t)n * sizeof *sorted);
    w.next = malloc((size_t)n * sizeof *w.next);
    w.sets = malloc((size_t)n * sizeof *w.sets);
    w.heap = malloc((size_t)states * sizeof *w.heap);
    int status = (sorted && w.next && w.sets && w.heap)
                     ? KPO_OK
                     : error_set(err, "minibatch order: out of memory for %lld responses",
                                 (long long)n);
    if (status == KPO_OK) {
        for (int64_t i = 0; i < n; i++)
            sorted[i] = (kk_item){values[i], i};
        qsort(sorted, (size_t)n, sizeof *sorted, kk_item_cmp);
        /* equal_size: each run of k consecutive sorted values seeds a state
         * with one value per set, so every set ends with n / k items. */
        for (int64_t s = 0; s < states; s++) {
            kk_set *sets = kk_state(&w, s);
            for (int i = 0; i < k; i++) {
                int64_t idx = sorted[s * k + i].index;
                w.next[idx] = -1;
                sets[i] = (kk_set){values[idx], 1, idx, idx};
            }
            kk_sort_sets(&w, sets);
            kk_push(&w, s);
        }
        while (w.heap_len > 1) {
            int64_t a = kk_pop(&w), b = kk_pop(&w);
            kk_merge(&w, a, b);
            kk_push(&w, a);
        }
        const kk_set *final = kk_state(&w, w.heap[0]);
        for (int r = 0; r < k && status == KPO_OK; r++) {
            if (final[r].count != states) { /* cannot happen: every merge pairs sets */
                status = error_set(err, "minibatch order: part %d holds %lld responses, not %lld",
                                   r, (long long)final[r].count, (long long)states);
                break;
            }
            int64_t *part = parts + (int64_t)r * states, j = 0;
            for (int64_t i = final[r].head; i >= 0; i = w.next[i])
                part[j++] = i;
            qsort(part, (size_t)states, sizeof *part, int64_cmp);
        }
    }
    free(sorted);
    free(w.next);
    free(w.sets);
    free(w.heap);
    return status;
}

int minibatch_order_balanced(const int64_t *seq_len, int64_t n, int dp_size, int minibatches,
                             int64_t *perm, kpo_error *err)
{
    if (dp_size < 1 || minibatches < 1 || n < 1 ||
        n % ((int64_t)dp_size * minibatches) != 0)
        return error_set(err, "minibatch order: %lld responses do not split into %d "
                              "data-parallel rank(s) x %d mini-batch(es) of equal size",
                         (long long)n, dp_size, minibatches);
    for (int64_t i = 0; i < n; i++)
        if (seq_len[i] < 0 || seq_len[i] > ((int64_t)1 << 31))
            return error_set(err, "minibatch order: response %lld has length %lld "
                                  "(outside 0..2^31)", (long long)i, (long long)seq_len[i]);
    int64_t *workload = malloc((size_t)n * sizeof *workload);
    int64_t *parts = malloc((size_t)n * sizeof *parts);
    kk_item *keyed = malloc((size_t)n * sizeof *keyed);
    int status = (workload && parts && keyed)
                     ? KPO_OK
                     : error_set(err, "minibatch order: out of memory for %lld responses",
                                 (long long)n);
    for (int64_t i = 0; status == KPO_OK && i < n; i++)
        workload[i] = minibatch_order_workload(seq_len[i]);
    if (status == KPO_OK)
        status = minibatch_order_partition(workload, n, dp_size, parts, err);
    const int64_t per_rank = n / dp_size, per_slice = per_rank / minibatches;
    for (int r = 0; status == KPO_OK && r < dp_size; r++) {
        int64_t *part = parts + (int64_t)r * per_rank;
        /* verl sorts a rank's part by (workload, index) and folds it:
         * even positions ascending, then odd positions descending, putting
         * the short sequences at both ends (a pipeline-parallel nicety that
         * also fixes which responses share a mini-batch). */
        for (int64_t j = 0; j < per_rank; j++)
            keyed[j] = (kk_item){workload[part[j]], part[j]};
        qsort(keyed, (size_t)per_rank, sizeof *keyed, kk_item_cmp);
        int64_t at = 0;
        for (int64_t j = 0; j < per_rank; j += 2)
            part[at++] = keyed[j].index;
        for (int64_t j = per_rank - 1 - (per_rank % 2); j >= 1; j -= 2)
            part[at++] = keyed[j].index;
        /* Rank r's data is this folded part; its mini-batch k is the k-th
         * slice of per_slice responses. kpo's mini-batch k is contiguous,
         * so it lists every rank's k-th slice, rank by rank. */
        for (int k = 0; k < minibatches; k++)
            memcpy(perm + (int64_t)k * (n / minibatches) + (int64_t)r * per_slice,
                   part + (int64_t)k * per_slice, (size_t)per_slice * sizeof *perm);
    }
    free(workload);
    free(parts);
    free(keyed);
    return status;
}

int minibatch_order_of_batch(const rl_batch *b, minibatch_order_kind kind, int dp_size,
                             int minibatches, int64_t *perm, kpo_error *err)
{
    if (kind == MINIBATCH_ORDER_PROMPT) {
        for (int64_t i = 0; i < b->n; i++)
            perm[i] = i;
        return KPO_OK;
    }
    int64_t *len = malloc((size_t)(b->n > 0 ? b->n : 1) * sizeof *len);
    if (!len)
        return error_set(err, "minibatch order: out of memory for %lld responses",
                         (long long)b->n);
    for (int64_t i = 0; i < b->n; i++)
        len[i] = b->seq_offsets[i + 1] - b->seq_offsets[i];
    int status = minibatch_order_balanced(len, b->n, dp_size, minibatches, perm, err);
    free(len);
    return status;
}

int minibatch_order_apply(const rl_batch *b, const int64_t *perm, rl_batch *out,
                          kpo_error *err)
{
    uint8_t *seen = calloc((size_t)(b->n > 0 ? b->n : 1), 1);
    if (!seen)
        return error_set(err, "minibatch order: out of memory for %lld responses",
                         (long long)b->n);
    for (int64_t j = 0; j < b->n; j++) {
        if (perm[j] < 0 || perm[j] >= b->n || seen[perm[j]]) {
            long long bad = (long long)perm[j];
            free(seen);
            return error_set(err, "minibatch order: position %lld takes response %lld, which is "
                                  "out of 0..%lld or taken twice",
                             (long long)j, bad, (long long)b->n - 1);
        }
        seen[perm[j]] = 1;
    }
    free(seen);
    if (rl_batch_alloc(out, b->n, b->seq_offsets[b->n], err) != KPO_OK)
        return KPO_ERR;
    for (int64_t j = 0; j < b->n; j++) {
        int64_t i = perm[j], t0 = b->seq_offsets[i], len = b->seq_offsets[i + 1] - t0;
        memcpy(out->tokens + out->seq_offsets[j], b->tokens + t0, (size_t)len * sizeof *b->tokens);
        out->seq_offsets[j + 1] = out->seq_offsets[j] + len;
        out->prompt_len[j] = b->prompt_len[i];
        out->group[j] = b->group[i];
        out->reward[j] = b->reward[i];
        out->advantage[j] = b->advantage[i];
        out->stopped[j] = b->stopped[i];
    }
    return KPO_OK;
}

int minibatch_order_apply_inplace(rl_batch *b, const int64_t *perm, kpo_error *err)
{
    rl_batch out;
    if (minibatch_order_apply(b, perm, &out, err) != KPO_OK)
        return KPO_ERR;
    rl_batch_free(b);
    *b = out;
    return KPO_OK;
}

void minibatch_order_invert(const int64_t *perm, int64_t n, int64_t *inverse)
{
    for (int64_t j = 0; j < n; j++)
        inverse[perm[j]] = j;
}
