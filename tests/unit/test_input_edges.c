/* Issue 17's input edges in readers outside the text and model modules: a
 * NUL byte in `kpo filter --input` text, sample offsets in a run file large
 * enough to overflow when added, and a checkpoint root with no checkpoints
 * (the sort of an empty list was handed a NULL array). The last two are
 * undefined behaviour that only the sanitizer build reports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/checkpoint.h"
#include "io/logratio_text.h"
#include "io/runfile.h"
#include "kpo_config.h"
#if KPO_HAVE_HDF5
#include <hdf5.h>
#endif

static void test_logratio_text_nul_byte(void **state)
{
    (void)state;
    char path[] = "/tmp/kpo-logratio-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char text[] = "0.1 0.2\n0.3\0 9\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    runfile_samples samples;
    kpo_error err;
    assert_int_equal(logratio_text_read(path, &samples, &err), KPO_ERR);
    char expect[128];
    snprintf(expect, sizeof expect, "%s:2:4: a NUL byte", path);
    if (!strstr(err.message, expect))
        fail_msg("'%s' lacks '%s'", err.message, expect);
    unlink(path);
}

static void test_runfile_offsets_that_overflow(void **state)
{
    (void)state;
#if KPO_HAVE_HDF5
    char path[] = "/tmp/kpo-runfile-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    runfile *rf;
    kpo_error err;
    assert_int_equal(runfile_create(path, "[test]\n", &rf, &err), KPO_OK);
    const double values[5] = {1, 2, 3, 4, 5};
    const int64_t offsets[3] = {0, 3, 5};
    assert_int_equal(runfile_append_samples(rf, 1, values, offsets, 2, &err), KPO_OK);
    innov_stats stats;
    innov_stats_init(&stats);
    assert_int_equal(runfile_append_step(rf, 1, &stats, NULL, 0, &err), KPO_OK);
    assert_int_equal(runfile_close(rf, &err), KPO_OK);
    runfile_samples samples;
    assert_int_equal(runfile_read_samples(path, &samples, &err), KPO_OK);
    assert_int_equal(samples.n_responses, 2);
    runfile_samples_free(&samples);
    /* A start near INT64_MAX: start + length used to overflow. */
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(file >= 0);
    hid_t set = H5Dopen2(file, "samples/offsets", H5P_DEFAULT);
    assert_true(set >= 0);
    const int64_t bad[2] = {0, INT64_MAX - 1};
    assert_true(H5Dwrite(set, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, bad) >= 0);
    H5Dclose(set);
    H5Fclose(file);
    assert_int_equal(runfile_read_samples(path, &samples, &err), KPO_ERR);
    assert_non_null(strstr(err.message, path));
    assert_non_null(strstr(err.message, "inconsistent"));
    unlink(path);
#else
    skip();
#endif
}

static void test_checkpoint_root_without_checkpoints(void **state)
{
    (void)state;
    char root[] = "/tmp/kpo-ckroot-XXXXXX";
    assert_non_null(mkdtemp(root));
    char dir[4096];
    int64_t step = 0;
    kpo_error err;
    assert_int_equal(checkpoint_find_latest(root, dir, sizeof dir, &step, &err), KPO_OK);
    assert_int_equal(step, -1);
    assert_string_equal(dir, "");
    rmdir(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logratio_text_nul_byte),
        cmocka_unit_test(test_runfile_offsets_that_overflow),
        cmocka_unit_test(test_checkpoint_root_without_checkpoints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
