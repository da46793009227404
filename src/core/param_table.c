/* The parameter-table machinery (param_table.h): schema rows for the INI
 * config, defaults, loading a section into a part's struct, CLI options. */
#include "core/param_table.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/parse.h"

const param_def *param_table_find(const param_def *rows, size_t n, const char *name)
{
    for (size_t k = 0; k < n; k++)
        if (strcmp(rows[k].name, name) == 0)
            return &rows[k];
    return NULL;
}

void param_choices_text(const param_def *row, char *out, size_t size)
{
    if (row->choices || !row->names) {
        snprintf(out, size, "%s", row->choices ? row->choices : "");
        return;
    }
    size_t used = 0;
    out[0] = '\0';
    for (int k = 0; k < row->n_names && used < size; k++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", k ? "|" : "", row->names[k]);
}

void param_table_schema(const char *section, const param_def *rows, size_t n, config_key *out)
{
    for (size_t k = 0; k < n; k++) {
        const param_def *r = &rows[k];
        const char *choices = r->choices;
        if (r->type == CONFIG_CHOICE && !choices && r->names) {
            char text[1024];
            param_choices_text(r, text, sizeof text);
            choices = strdup(text); /* kept: the schema lives as long as the process */
        }
        out[k] = (config_key){section, r->name, r->type, r->default_value, r->min, r->max,
                              choices, r->help};
    }
}

/* The index of text among the row's choices, or -1. */
static int choice_index(const param_def *row, const char *text)
{
    if (!row->choices && row->names) {
        for (int k = 0; k < row->n_names; k++)
            if (strcmp(row->names[k], text) == 0)
                return k;
        return -1;
    }
    const char *p = row->choices ? row->choices : "";
    const size_t len = strlen(text);
    for (int k = 0;; k++) {
        const char *bar = strchr(p, '|');
        const size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncmp(p, text, n) == 0)
            return k;
        if (!bar)
            return -1;
        p = bar + 1;
    }
}

int param_store(const param_def *row, const char *text, void *dst, kpo_error *err)
{
    if (!row->size)
        return KPO_OK;
    char *at = (char *)dst + row->offset;
    switch (row->type) {
    case CONFIG_INT: {
        int64_t v;
        if (parse_int64(text, row->name, &v, err) != KPO_OK)
            return KPO_ERR;
        if (row->size == sizeof(int64_t))
            memcpy(at, &v, sizeof v);
        else {
            int i = (int)v;
            memcpy(at, &i, sizeof i);
        }
        return KPO_OK;
    }
    case CONFIG_DOUBLE: {
        double v;
        if (parse_double(text, row->name, &v, err) != KPO_OK)
            return KPO_ERR;
        memcpy(at, &v, sizeof v);
        return KPO_OK;
    }
    case CONFIG_BOOL: {
        int v;
        if (config_parse_bool(text, &v) != KPO_OK)
            return error_set(err, "%s: not a boolean: '%s'", row->name, text);
        memcpy(at, &v, sizeof v);
        return KPO_OK;
    }
    case CONFIG_STRING:
        memcpy(at, &text, sizeof text);
        return KPO_OK;
    case CONFIG_CHOICE: {
        if (row->size != sizeof(int))
            return error_set(err, "%s: a choice is stored in an int-sized enum", row->name);
        int k = choice_index(row, text);
        if (k < 0) {
            char choices[1024];
            param_choices_text(row, choices, sizeof choices);
            return error_set(err, "%s: '%s' is not one of %s", row->name, text, choices);
        }
        int v = row->values ? row->values[k] : k;
        memcpy(at, &v, sizeof v);
        return KPO_OK;
    }
    }
    return KPO_ERR;
}

void param_table_defaults(const param_def *rows, size_t n, void *dst)
{
    kpo_error err;
    for (size_t k = 0; k < n; k++)
        if (rows[k].type != CONFIG_STRING) /* a string default would not outlive the call */
            (void)param_store(&rows[k], rows[k].default_value, dst, &err);
}

int param_table_load(const config *cfg, const char *section, const param_def *rows, size_t n,
                     void *dst, kpo_error *err)
{
    char dotted[256];
    for (size_t k = 0; k < n; k++) {
        if (!rows[k].size)
            continue;
        snprintf(dotted, sizeof dotted, "%s.%s", section, rows[k].name);
        if (param_store(&rows[k], config_get_string(cfg, dotted), dst, err) != KPO_OK)
            return error_prefix(err, "%s.", section);
    }
    return KPO_OK;
}
