/* What the gpu benchmarks (bench_gpu*.c, not tests) share: a monotonic clock
 * and the "ROW|<what>|<value>|<unit>|<note>" line that run.sh gathers into
 * its table. Static inline, so a benchmark that uses only one gets no
 * warning. */
#ifndef KPO_TESTS_GPU_BENCH_UTIL_H
#define KPO_TESTS_GPU_BENCH_UTIL_H

#include <stdio.h>
#include <time.h>

static inline double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One measurement; flushed so run.sh sees it even if a later one crashes. */
static inline void row(const char *what, double value, const char *unit, const char *note)
{
    printf("ROW|%s|%.4g|%s|%s\n", what, value, unit, note);
    fflush(stdout);
}

#endif
