/* Placeholder (issue 7, being written). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "gpu_skip.h"

static void test_placeholder(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_placeholder)};
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    char why[512];
    return failed ? 1 : gpu_unavailable(why, sizeof why) ? 77 : 0;
}
