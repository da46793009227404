/* Prints kpo's balanced mini-batch order for lengths read on stdin, for the
 * comparison with a Python rendition of verl's balance_batch in
 * test_minibatch_order.py. Input (whitespace separated), any number of
 * cases until end of input:
 *   n dp_size minibatches seq_len[n]
 * Output per case: "perm" and the n response indices in kpo's new order,
 * then "parts" and the dp_size partitions of minibatch_order_partition over
 * verl's workloads (n / dp_size ascending indices each), one line each;
 * "error <message>" instead when the case is rejected. */
#include <stdio.h>
#include <stdlib.h>

#include "learner/minibatch_order.h"

static void print_list(const char *tag, const int64_t *v, int64_t n)
{
    printf("%s", tag);
    for (int64_t i = 0; i < n; i++)
        printf(" %lld", (long long)v[i]);
    printf("\n");
}

int main(void)
{
    long long n;
    int dp, minibatches;
    while (scanf("%lld %d %d", &n, &dp, &minibatches) == 3) {
        if (n < 1 || n > 100000000)
            return 3;
        int64_t *len = malloc((size_t)n * sizeof *len), *perm = malloc((size_t)n * sizeof *perm);
        int64_t *work = malloc((size_t)n * sizeof *work), *parts = malloc((size_t)n * sizeof *parts);
        if (!len || !perm || !work || !parts)
            return 2;
        for (long long i = 0; i < n; i++) {
            long long v;
            if (scanf("%lld", &v) != 1)
                return 4;
            len[i] = v;
            work[i] = minibatch_order_workload(v);
        }
        kpo_error err;
        if (minibatch_order_balanced(len, n, dp, minibatches, perm, &err) != KPO_OK ||
            minibatch_order_partition(work, n, dp, parts, &err) != KPO_OK) {
            printf("error %s\n", err.message);
        } else {
            print_list("perm", perm, n);
            printf("parts\n");
            for (int r = 0; r < dp; r++)
                print_list("part", parts + (int64_t)r * (n / dp), n / dp);
        }
        free(len);
        free(perm);
        free(work);
        free(parts);
    }
    return 0;
}
