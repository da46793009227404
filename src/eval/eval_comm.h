/* The little MPI that `kpo eval` needs, with a one-process fallback when
 * the build has no MPI: ranks, each rank's GPU, agreeing on failure,
 * summing counts and gathering bytes onto rank 0, and ending every rank on a fatal error. */
#ifndef KPO_EVAL_EVAL_COMM_H
#define KPO_EVAL_EVAL_COMM_H

#include <stdint.h>

#include "core/error.h"

void eval_comm_init(int *argc, char ***argv, int *rank, int *size);
void eval_comm_finalize(void);

/* Collective: the lowest rank with failed != 0, or -1 when none failed, so
 * exactly one rank reports a failure that several may share. */
int eval_comm_first_failure(int failed);

/* Collective: makes this rank's GPU (its local rank, as kpo train picks
 * it: comm_nccl_select_device) the current device; *gpu is its index.
 * Fails with "no usable GPU: <why>" on a rank without one. Without MPI the
 * one process keeps CUDA's default device, 0. */
int eval_comm_select_gpu(int *gpu, kpo_error *err);

/* Collective: values[n] summed over ranks onto rank 0 (others' are left
 * as they were). */
void eval_comm_sum_to_root(int64_t *values, int64_t n);

/* Collective: every rank's n bytes onto rank 0, where *parts[r] (malloc'ed,
 * NUL-terminated) and (*lens)[r] hold rank r's; pass NULLs elsewhere. */
int eval_comm_gather_bytes(const char *mine, int64_t n, char ***parts, int64_t **lens,
                           kpo_error *err);

/* Ends the whole job from one rank with "kpo: rank R: message". */
_Noreturn void eval_comm_abort(const char *message);

#endif
