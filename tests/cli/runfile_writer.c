/* Writes run files with known contents for the h5py tests:
 *   runfile_writer create PATH STEPS [SLEEP_MS]   steps 1..STEPS; after each
 *                                                 flush prints "flushed S"
 *   runfile_writer append PATH FIRST LAST         reopen, add FIRST..LAST
 *   runfile_writer truncate PATH LAST_KEPT        cut back to LAST_KEPT
 * Step s records the innovations delta_i = s + 0.5 i (i < 10) with sigma 1,
 * gain 0.01 s, threshold 3 and |delta| > 3 marked clipped; metrics
 * loss = 1.5 s, reward_mean = s / 10, and late_metric = s from step 3 on;
 * samples: two responses of lengths s and 2 with values 100 s + token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/runfile.h"

static int write_step(runfile *rf, int64_t s, kpo_error *err)
{
    innov_stats stats;
    innov_stats_init(&stats);
    for (int i = 0; i < 10; i++) {
        double delta = (double)s + 0.5 * i;
        innov_stats_add(&stats, delta, 1.0, 0.01 * (double)s, 3.0, delta > 3.0);
    }
    double values[64];
    int64_t offsets[3] = {0, s, s + 2};
    for (int64_t i = 0; i < s + 2; i++)
        values[i] = 100.0 * (double)s + (double)(i < s ? i : i - s);
    runfile_metric metrics[3] = {
        {"loss", 1.5 * (double)s}, {"reward_mean", (double)s / 10.0}, {"late_metric", (double)s}};
    if (runfile_append_samples(rf, s, values, offsets, 2, err) != KPO_OK)
        return KPO_ERR;
    return runfile_append_step(rf, s, &stats, metrics, s >= 3 ? 3 : 2, err);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: runfile_writer create|append|truncate PATH ...\n");
        return 2;
    }
    kpo_error err;
    runfile *rf = NULL;
    const char *mode = argv[1], *path = argv[2];
    int status;
    if (strcmp(mode, "create") == 0) {
        long steps = atol(argv[3]), sleep_ms = argc > 4 ? atol(argv[4]) : 0;
        status = runfile_create(path, "[test]\nkind = known-values\n", &rf, &err);
        for (long s = 1; status == KPO_OK && s <= steps; s++) {
            status = write_step(rf, s, &err);
            if (status == KPO_OK) {
                printf("flushed %ld\n", s);
                fflush(stdout);
                struct timespec pause = {sleep_ms / 1000, (sleep_ms % 1000) * 1000000L};
                nanosleep(&pause, NULL);
            }
        }
    } else if (strcmp(mode, "append") == 0 && argc == 5) {
        status = runfile_open_append(path, &rf, &err);
        for (long s = atol(argv[3]); status == KPO_OK && s <= atol(argv[4]); s++)
            status = write_step(rf, s, &err);
    } else if (strcmp(mode, "truncate") == 0) {
        status = runfile_open_append(path, &rf, &err);
        if (status == KPO_OK)
            status = runfile_truncate(rf, atol(argv[3]), &err);
    } else {
        fprintf(stderr, "runfile_writer: unknown mode %s\n", mode);
        return 2;
    }
    kpo_error close_err;
    if (rf && runfile_close(rf, &close_err) != KPO_OK && status == KPO_OK) {
        err = close_err;
        status = KPO_ERR;
    }
    if (status != KPO_OK) {
        fprintf(stderr, "runfile_writer: %s\n", err.message);
        return 1;
    }
    return 0;
}
