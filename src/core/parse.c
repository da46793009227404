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
    size_t n = 0;
    char *saveptr = NULL;
    for (char *tok = strtok_r(copy, ",", &saveptr); tok; tok = strtok_r(NULL, ",", &saveptr)) {
        if (parse_int64(tok, name, &values[n], err) != KPO_OK) {
            free(values);
            free(copy);
            return KPO_ERR;
        }
        n++;
    }
    free(copy);
    if (n == 0) {
        free(values);
        return error_set(err, "%s: expected a comma-separated list of integers", name);
    }
    *out = values;
    *count = n;
    return KPO_OK;
}
