/* The world-level MPI of the one-shot commands (kpo eval), with a
 * one-process fallback when the build has no MPI: ranks, each rank's GPU,
 * agreeing on the first failure, summing counts and gathering bytes onto
 * rank 0, and ending every rank on a fatal error. */
#ifndef KPO_COMM_COMM_WORLD_H
#define KPO_COMM_COMM_WORLD_H

#include <stdint.h>

#include "core/error.h"

void comm_world_init(int *argc, char ***argv, int *rank, int *size);
void comm_world_finalize(void);

/* Collective: the lowest rank with failed != 0, or -1 when none failed, so
 * exactly one rank reports a failure that several may share (over MPI:
 * comm_first_failure on MPI_COMM_WORLD). */
int comm_world_first_failure(int failed);

/* Collective: makes this rank's GPU (its local rank, as kpo train picks
 * it: comm_nccl_select_device) the current device; *gpu is its index.
 * Without MPI the one process keeps CUDA's default device, 0, and this
 * always succeeds (whether a GPU is there is the caller's check). */
int comm_world_select_gpu(int *gpu, kpo_error *err);

/* Collective: values[n] summed over ranks onto rank 0 (others' are left
 * as they were). */
void comm_world_sum_to_root(int64_t *values, int64_t n);

/* Collective: every rank's n bytes onto rank 0, where *parts[r] (malloc'ed,
 * NUL-terminated) and (*lens)[r] hold rank r's; pass NULLs elsewhere. */
int comm_world_gather_bytes(const char *mine, int64_t n, char ***parts, int64_t **lens,
                            kpo_error *err);

/* Ends the whole job from one rank with "kpo: rank R: message" (without
 * MPI: "kpo: message"). */
_Noreturn void comm_world_abort(const char *message);

#endif
