/* Strict number and list parsing for options and config values: the whole
 * text must be a value, and errors name the option. */
#include "core/parse.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int parse_double(const char *text, const char *name, double *out, kpo_error *err)
{
    if (!text || !*text)
        return error_set(err, "%s: expected a number, got an empty value", name);
    errno = 0;
    char *end = NULL;
    double value = strtod(text, &end);
    if (end == text || *end != '\0')
        return error_set(err, "%s: '%s' is not a number", name, text);
    if (!isfinite(value) || errno == ERANGE)
        return error_set(err, "%s: '%s' is not a finite number", name, text);
    *out = value;
    return KPO_OK;
}

int parse_int64(const char *text, const char *name, int64_t *out, kpo_error *err)
{
    if (!text || !*text)
        return error_set(err, "%s: expected an integer, got an empty value", name);
    errno = 0;
    char *end = NULL;
    long long value = strtoll(text, &end, 10);
    if (end == text || *end != '\0')
        return error_set(err, "%s: '%s' is not an integer", name, text);
    if (errno == ERANGE)
        return error_set(err, "%s: '%s' is out of range", name, text);
    *out = (int64_t)value;
    return KPO_OK;
}

int parse_int64_list(const char *text, const char *name, int64_t **out, size_t *count,
                     kpo_error *err)
{
    size_t capacity = 1;
    for (const char *p = text; *p; p++)
        capacity += (*p == ',');
    int64_t *values = malloc(capacity * sizeof *values);
    char *copy = strdup(text);
    if (!values || !copy) {
        free(values);
        free(copy);
        return error_set(err, "%s: out of memory", name);
    }
    if (!*copy) {
        free(values);
        free(copy);
        return error_set(err, "%s: expected a comma-separated list of integers", name);
    }
    /* Split by hand: strtok_r would merge ",," and read "1,,2" as 1,2. */
    size_t n = 0;
    for (char *item = copy;; n++) {
        char *comma = strchr(item, ',');
        if (comma)
            *comma = '\0';
        int status = *item ? parse_int64(item, name, &values[n], err)
                           : error_set(err, "%s: item %zu of '%s' is empty", name, n + 1, text);
        if (status != KPO_OK) {
            free(values);
            free(copy);
            return KPO_ERR;
        }
        if (!comma)
            break;
        item = comma + 1;
    }
    n++;
    free(copy);
    *out = values;
    *count = n;
    return KPO_OK;
}
