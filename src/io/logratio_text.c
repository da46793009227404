/* kpo filter --input: raw log-ratios as text, one response per line, into
 * the same CSR layout a run file gives. */
#include "io/logratio_text.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

typedef struct growing {
    void *data;
    size_t used, capacity, item;
} growing;

static int grow_push(growing *g, const void *item)
{
    if (g->used == g->capacity) {
        size_t capacity = g->capacity ? 2 * g->capacity : 1024;
        void *data = realloc(g->data, capacity * g->item);
        if (!data)
            return KPO_ERR;
        g->data = data;
        g->capacity = capacity;
    }
    memcpy((char *)g->data + g->used * g->item, item, g->item);
    g->used++;
    return KPO_OK;
}

/* Parses one line's values; returns KPO_ERR with file:line:column. */
static int parse_line(const char *path, long line_no, char *line, growing *values, kpo_error *err)
{
    char *p = line;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (!*p)
            break;
        char *end = NULL;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || (*end && *end != ' ' && *end != '\t' && *end != '\r' && *end != '\n'))
            return error_set(err, "%s:%ld:%ld: '%.*s' is not a number", path, line_no,
                             (long)(p - line) + 1, (int)strcspn(p, " \t\r\n"), p);
        if (!isfinite(v))
            return error_set(err, "%s:%ld:%ld: log-ratio '%.*s' is not finite", path, line_no,
                             (long)(p - line) + 1, (int)(end - p), p);
        if (grow_push(values, &v) != KPO_OK)
            return error_set(err, "%s:%ld: out of memory", path, line_no);
        p = end;
    }
    return KPO_OK;
}

int logratio_text_read(const char *path, runfile_samples *out, kpo_error *err)
{
    memset(out, 0, sizeof *out);
    int from_stdin = strcmp(path, "-") == 0;
    FILE *f = from_stdin ? stdin : fopen(path, "r");
    if (!f)
        return error_set(err, "%s: cannot open: %s", path, strerror(errno));
    growing values = {.item = sizeof(double)}, offsets = {.item = sizeof(int64_t)},
            steps = {.item = sizeof(int64_t)};
    char *line = NULL;
    size_t line_capacity = 0;
    long line_no = 0;
    int status = KPO_OK;
    int64_t zero = 0;
    if (grow_push(&offsets, &zero) != KPO_OK)
        status = error_set(err, "%s: out of memory", path);
    ssize_t got;
    while (status == KPO_OK && (got = getline(&line, &line_capacity, f)) != -1) {
        line_no++;
        /* The parser stops at a NUL: the rest of the line would vanish. */
        if (memchr(line, '\0', (size_t)got)) {
            status = error_set(err, "%s:%ld:%ld: a NUL byte in the line", path, line_no,
                               (long)((char *)memchr(line, '\0', (size_t)got) - line) + 1);
            break;
        }
        const char *first = line + strspn(line, " \t\r\n");
        if (!*first || *first == '#')
            continue;
        status = parse_line(path, line_no, line, &values, err);
        int64_t end = (int64_t)values.used, step = line_no;
        if (status == KPO_OK &&
            (grow_push(&offsets, &end) != KPO_OK || grow_push(&steps, &step) != KPO_OK))
            status = error_set(err, "%s: out of memory", path);
    }
    if (status == KPO_OK && ferror(f))
        status = error_set(err, "%s: read error", path);
    free(line);
    if (!from_stdin)
        fclose(f);
    if (status == KPO_OK && steps.used == 0)
        status = error_set(err, "%s: no log-ratio sequences (one response per line expected)",
                           path);
    if (status != KPO_OK) {
        free(values.data);
        free(offsets.data);
        free(steps.data);
        return KPO_ERR;
    }
    out->n_responses = (int64_t)steps.used;
    out->values = values.data ? values.data : malloc(sizeof(double));
    out->offsets = offsets.data;
    out->step = steps.data;
    return KPO_OK;
}
