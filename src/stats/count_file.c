/* Reading a counts file for kpo stats: one "correct_count samples" line per
 * problem, each count range-checked. */
#include "stats/count_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "core/parse.h"

static int parse_line(char *line, problem_count *out, kpo_error *err)
{
    char *fields[3] = {NULL, NULL, NULL};
    int n = 0;
    for (char *f = strtok(line, " \t\r\n"); f; f = strtok(NULL, " \t\r\n"))
        if (n < 3)
            fields[n++] = f;
        else
            n++;
    if (n != 2)
        return error_set(err, "expected 'correct_count samples', got %d fields", n);
    int64_t correct, samples;
    if (parse_int64(fields[0], "correct_count", &correct, err) != KPO_OK ||
        parse_int64(fields[1], "samples", &samples, err) != KPO_OK)
        return KPO_ERR;
    /* The bound keeps counts exact in a long and a double, and turns a
     * flipped count (140737488355488) into an error. */
    const int64_t max_samples = (int64_t)1 << 30;
    if (samples < 1 || samples > max_samples || correct < 0 || correct > samples)
        return error_set(err, "need 0 <= correct_count <= samples and 1 <= samples <= %lld, got "
                              "%lld %lld",
                         (long long)max_samples, (long long)correct, (long long)samples);
    out->correct = (long)correct;
    out->samples = (long)samples;
    return KPO_OK;
}

int count_file_read(const char *path, problem_count **counts, size_t *n, kpo_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return error_set(err, "%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t capacity = 0, count = 0, room = 0;
    problem_count *out = NULL;
    long line_no = 0;
    int status = KPO_OK;
    while (status == KPO_OK && getline(&line, &capacity, f) >= 0) {
        line_no++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        if (strspn(line, " \t\r\n") == strlen(line))
            continue;
        if (count == room) {
            room = room ? room * 2 : 512;
            problem_count *grown = realloc(out, room * sizeof *grown);
            if (!grown) {
                status = error_set(err, "%s: out of memory", path);
                break;
            }
            out = grown;
        }
        if (parse_line(line, &out[count], err) != KPO_OK)
            status = error_prefix(err, "%s:%ld: ", path, line_no);
        else
            count++;
    }
    free(line);
    fclose(f);
    if (status == KPO_OK && count == 0)
        status = error_set(err, "%s: no problems (expected lines 'correct_count samples')", path);
    if (status != KPO_OK) {
        free(out);
        return KPO_ERR;
    }
    *counts = out;
    *n = count;
    return KPO_OK;
}
