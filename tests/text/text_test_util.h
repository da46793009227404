/* Helpers shared by the text tests: where ../shared/data is, and skipping
 * visibly when it is absent. */
#ifndef KPO_TESTS_TEXT_TEST_UTIL_H
#define KPO_TESTS_TEXT_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>

#include "core/file_util.h"

/* Fills path with $KPO_SHARED/data/<name>; returns 0 (and prints why) when
 * the file is absent so the caller can skip(). */
static inline int shared_data_path(const char *name, char *path, size_t size)
{
    const char *shared = getenv("KPO_SHARED");
    snprintf(path, size, "%s/data/%s", shared ? shared : "../shared", name);
    if (file_exists(path))
        return 1;
    printf("SKIPPED: %s is absent (the shared data lives in ../shared/data)\n", path);
    return 0;
}

#endif
