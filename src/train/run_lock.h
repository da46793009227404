/* One trainer per run directory: an exclusive flock on RUN/.lock, held by
 * world rank 0 for the life of the run (the kernel drops it when the
 * process ends, however it ends). The file holds "host pid" of the holder,
 * so a second trainer can say who has the directory. */
#ifndef KPO_TRAIN_RUN_LOCK_H
#define KPO_TRAIN_RUN_LOCK_H

#include "core/error.h"

typedef struct run_lock {
    int fd; /* -1: not held */
} run_lock;

#define RUN_LOCK_NONE ((run_lock){.fd = -1})

/* Takes dir's lock (dir must exist) without waiting; held already: no-op.
 * Another process holding it: KPO_ERR, "RUN: locked by another kpo train
 * (host H, pid P)". */
int run_lock_acquire(run_lock *lock, const char *dir, kpo_error *err);

/* Releases it (closing the file); the file itself stays. */
void run_lock_release(run_lock *lock);

#endif
