/* Streaming JSON Lines (jsonl_reader.h): one object per line, errors naming
 * the file and line, bad lines skipped on request. */
#include "data/jsonl_reader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

int jsonl_open(jsonl_reader *r, const char *path, bool skip_bad, kpo_error *err)
{
    memset(r, 0, sizeof *r);
    snprintf(r->path, sizeof r->path, "%s", path);
    r->skip_bad = skip_bad;
    r->file = fopen(path, "rb");
    if (!r->file)
        return error_set(err, "%s: cannot open: %s", path, strerror(errno));
    return KPO_OK;
}

void jsonl_close(jsonl_reader *r)
{
    if (r->file)
        fclose(r->file);
    free(r->buffer);
    r->file = NULL;
    r->buffer = NULL;
}

static int is_blank(const char *text, size_t len)
{
    for (size_t k = 0; k < len; k++)
        if (!strchr(" \t\r\n", text[k]))
            return 0;
    return 1;
}

int jsonl_parse_object(const char *text, size_t len, cJSON **out, kpo_error *err)
{
    const char *end = NULL;
    if (memchr(text, '\0', len))
        return error_set(err, "a NUL byte inside the line");
    cJSON *obj = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!obj) {
        const char *at = cJSON_GetErrorPtr();
        long column = at && at >= text && at <= text + len ? (long)(at - text) + 1 : 0;
        return error_set(err, "malformed JSON near column %ld", column);
    }
    if (!is_blank(end, (size_t)(text + len - end))) {
        cJSON_Delete(obj);
        return error_set(err, "text after the JSON value at column %ld", (long)(end - text) + 1);
    }
    if (!cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        return error_set(err, "the line is not a JSON object");
    }
    *out = obj;
    return KPO_OK;
}

int jsonl_next(jsonl_reader *r, cJSON **out, kpo_error *err)
{
    for (;;) {
        errno = 0;
        ssize_t n = getline(&r->buffer, &r->capacity, r->file);
        if (n < 0) {
            if (ferror(r->file))
                return error_set(err, "%s:%ld: read error: %s", r->path, r->line + 1,
                                 strerror(errno));
            return 0;
        }
        r->line++;
        kpo_error line_err;
        int status;
        if ((size_t)n > JSONL_MAX_LINE)
            status = error_set(&line_err, "line of %zd bytes is over the %zu-byte limit", n,
                               JSONL_MAX_LINE);
        else if (is_blank(r->buffer, (size_t)n))
            continue;
        else
            status = jsonl_parse_object(r->buffer, (size_t)n, out, &line_err);
        if (status == KPO_OK)
            return 1;
        if (!r->skip_bad)
            return error_set(err, "%s:%ld: %s", r->path, r->line, line_err.message);
        if (r->n_skipped++ == 0)
            error_set(&r->first_skipped, "%s:%ld: %s", r->path, r->line, line_err.message);
    }
}
