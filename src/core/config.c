/* The typed INI configuration: files read with inih (file:line in every
 * error), --set overrides, validation and the dump. */
#include "core/config.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/parse.h"

static ptrdiff_t find_key(const config *cfg, const char *section, const char *name)
{
    for (size_t k = 0; k < cfg->n_keys; k++)
        if (strcmp(cfg->schema[k].section, section) == 0 && strcmp(cfg->schema[k].name, name) == 0)
            return (ptrdiff_t)k;
    return -1;
}

static ptrdiff_t find_dotted(const config *cfg, const char *dotted)
{
    const char *dot = strchr(dotted, '.');
    if (!dot)
        return -1;
    char section[128];
    snprintf(section, sizeof section, "%.*s", (int)(dot - dotted), dotted);
    return find_key(cfg, section, dot + 1);
}

static int set_value(config *cfg, size_t k, const char *value, const char *origin)
{
    char *v = strdup(value), *o = strdup(origin);
    if (!v || !o) {
        free(v);
        free(o);
        return KPO_ERR;
    }
    free(cfg->values[k]);
    free(cfg->origins[k]);
    cfg->values[k] = v;
    cfg->origins[k] = o;
    return KPO_OK;
}

int config_init(config *cfg, const config_key *schema, size_t n_keys, kpo_error *err)
{
    cfg->schema = schema;
    cfg->n_keys = n_keys;
    cfg->values = calloc(n_keys, sizeof *cfg->values);
    cfg->origins = calloc(n_keys, sizeof *cfg->origins);
    if (!cfg->values || !cfg->origins) {
        config_free(cfg);
        return error_set(err, "config: out of memory");
    }
    for (size_t k = 0; k < n_keys; k++)
        if (set_value(cfg, k, schema[k].default_value, "default") != KPO_OK) {
            config_free(cfg);
            return error_set(err, "config: out of memory");
        }
    return KPO_OK;
}

void config_free(config *cfg)
{
    for (size_t k = 0; cfg->values && k < cfg->n_keys; k++) {
        free(cfg->values[k]);
        free(cfg->origins[k]);
    }
    free(cfg->values);
    free(cfg->origins);
    cfg->values = cfg->origins = NULL;
}

/* "a, b, c": the keys of one section, for error messages. */
static void list_section(const config *cfg, const char *section, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t k = 0; k < cfg->n_keys && used < size; k++)
        if (strcmp(cfg->schema[k].section, section) == 0)
            used += (size_t)snprintf(out + used, size - used, "%s%s", used ? ", " : "",
                                     cfg->schema[k].name);
}

static void list_sections(const config *cfg, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t k = 0; k < cfg->n_keys && used < size; k++) {
        int seen = 0;
        for (size_t j = 0; j < k; j++)
            seen |= strcmp(cfg->schema[j].section, cfg->schema[k].section) == 0;
        if (!seen)
            used += (size_t)snprintf(out + used, size - used, "%s[%s]", used ? ", " : "",
                                     cfg->schema[k].section);
    }
}

static int unknown_key_error(const config *cfg, const char *where, const char *section,
                             const char *name, kpo_error *err)
{
    char valid[1024];
    list_section(cfg, section, valid, sizeof valid);
    if (valid[0])
        return error_set(err, "%s: unknown key '%s' in [%s] (valid: %s)", where, name, section,
                         valid);
    list_sections(cfg, valid, sizeof valid);
    return error_set(err, "%s: unknown section [%s] (valid: %s)", where, section, valid);
}

/* inih drives a line reader; counting lines here lets errors name them. */
typedef struct ini_reading {
    config *cfg;
    FILE *file;
    const char *path;
    int line;
    int at_line_start; /* the last chunk ended a line (inih splits long ones) */
    int *set_at;       /* [n_keys] line where this file set the key, 0: not yet */
    int failed;
    kpo_error *err;
} ini_reading;

/* fgets, except that a NUL byte is an error: inih would end the value at
 * it and silently drop the rest of the line. */
static char *read_line(char *buffer, int size, void *stream)
{
    ini_reading *r = stream;
    if (r->failed || size < 2)
        return NULL;
    int used = 0, c = 0;
    while (used < size - 1 && c != '\n' && (c = getc(r->file)) != EOF) {
        if (used == 0 && r->at_line_start)
            r->line++;
        if (c == '\0') {
            error_set(r->err, "%s:%d: a NUL byte in the line", r->path, r->line);
            r->failed = 1;
            return NULL;
        }
        buffer[used++] = (char)c;
    }
    if (used == 0)
        return NULL;
    buffer[used] = '\0';
    r->at_line_start = buffer[used - 1] == '\n';
    if (!r->at_line_start && (c = getc(r->file)) != EOF) {
        /* inih reads at most size - 1 bytes; the rest of a longer line would
         * be parsed as a line of its own (or cut off a value). Only a rest
         * inside a comment (a dump's long origin paths) can be dropped. */
        const char *start = buffer + strspn(buffer, " \t");
        if (*start == ';' || *start == '#' || strstr(buffer, " ;") || strstr(buffer, "\t;")) {
            while (c != EOF && c != '\n') {
                if (c == '\0') {
                    error_set(r->err, "%s:%d: a NUL byte in the line", r->path, r->line);
                    r->failed = 1;
                    return NULL;
                }
                c = getc(r->file);
            }
            buffer[used - 1] = '\n'; /* the dropped part was comment */
            r->at_line_start = 1;
            return buffer;
        }
        error_set(r->err, "%s:%d: line longer than %d bytes", r->path, r->line, size - 2);
        r->failed = 1;
        return NULL;
    }
    return buffer;
}

static int handle_pair(void *user, const char *section, const char *name, const char *value)
{
    ini_reading *r = user;
    if (r->failed)
        return 0;
    char where[4200];
    snprintf(where, sizeof where, "%s:%d", r->path, r->line);
    ptrdiff_t k = find_key(r->cfg, section, name);
    if (k < 0) {
        unknown_key_error(r->cfg, where, section, name, r->err);
        r->failed = 1;
        return 0;
    }
    /* Within one file a second assignment is a mistake (the first would be
     * silently lost); a later file or --set overriding is how configs stack. */
    if (r->set_at[k]) {
        error_set(r->err, "%s: [%s] %s is set twice in this file (also at %s:%d)", where,
                  section, name, r->path, r->set_at[k]);
        r->failed = 1;
        return 0;
    }
    r->set_at[k] = r->line;
    if (set_value(r->cfg, (size_t)k, value, where) != KPO_OK) {
        error_set(r->err, "%s: out of memory", where);
        r->failed = 1;
        return 0;
    }
    return 1;
}

int config_load_file(config *cfg, const char *path, kpo_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return error_set(err, "%s: cannot open config: %s", path, strerror(errno));
    int *set_at = calloc(cfg->n_keys ? cfg->n_keys : 1, sizeof *set_at);
    if (!set_at) {
        fclose(f);
        return error_set(err, "%s: out of memory", path);
    }
    ini_reading r = {.cfg = cfg, .file = f, .path = path, .line = 0, .at_line_start = 1,
                     .set_at = set_at, .failed = 0, .err = err};
    int status = ini_parse_stream(read_line, &r, handle_pair, &r);
    int read_error = ferror(f);
    fclose(f);
    free(set_at);
    if (r.failed)
        return KPO_ERR;
    if (read_error)
        return error_set(err, "%s: read error", path);
    if (status != 0)
        return error_set(err, "%s:%d: malformed line (expected [section] or key = value)", path,
                         status > 0 ? status : r.line);
    return KPO_OK;
}

int config_apply_override(config *cfg, const char *assignment, kpo_error *err)
{
    const char *equals = strchr(assignment, '=');
    const char *dot = strchr(assignment, '.');
    if (!equals || !dot || dot > equals)
        return error_set(err, "--set %s: expected section.key=value", assignment);
    char section[128], name[128];
    snprintf(section, sizeof section, "%.*s", (int)(dot - assignment), assignment);
    snprintf(name, sizeof name, "%.*s", (int)(equals - dot - 1), dot + 1);
    ptrdiff_t k = find_key(cfg, section, name);
    char where[300];
    snprintf(where, sizeof where, "--set %s.%s", section, name);
    if (k < 0)
        return unknown_key_error(cfg, where, section, name, err);
    if (set_value(cfg, (size_t)k, equals + 1, "--set") != KPO_OK)
        return error_set(err, "%s: out of memory", where);
    return KPO_OK;
}

int config_parse_bool(const char *text, int *out)
{
    static const char *const truthy[] = {"true", "yes", "on", "1"};
    static const char *const falsy[] = {"false", "no", "off", "0"};
    for (int k = 0; k < 4; k++) {
        if (strcasecmp(text, truthy[k]) == 0) {
            *out = 1;
            return KPO_OK;
        }
        if (strcasecmp(text, falsy[k]) == 0) {
            *out = 0;
            return KPO_OK;
        }
    }
    return KPO_ERR;
}

static int choice_allowed(const char *choices, const char *value)
{
    size_t len = strlen(value);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncmp(p, value, n) == 0)
            return 1;
        p += n + (bar ? 1 : 0);
    }
    return 0;
}

static int validate_key(const config *cfg, size_t k, kpo_error *err)
{
    const config_key *key = &cfg->schema[k];
    const char *value = cfg->values[k];
    char label[512];
    snprintf(label, sizeof label, "%s.%s = '%s' (from %s)", key->section, key->name, value,
             cfg->origins[k]);
    kpo_error inner;
    switch (key->type) {
    case CONFIG_INT: {
        int64_t v;
        if (parse_int64(value, label, &v, &inner) != KPO_OK)
            return error_set(err, "%s: expected an integer", label);
        if ((double)v < key->min || (double)v > key->max)
            return error_set(err, "%s: must be in [%.15g, %.15g]", label, key->min, key->max);
        return KPO_OK;
    }
    case CONFIG_DOUBLE: {
        double v;
        if (parse_double(value, label, &v, &inner) != KPO_OK)
            return error_set(err, "%s: expected a finite number", label);
        if (v < key->min || v > key->max)
            return error_set(err, "%s: must be in [%.15g, %.15g]", label, key->min, key->max);
        return KPO_OK;
    }
    case CONFIG_BOOL: {
        int b;
        if (config_parse_bool(value, &b) != KPO_OK)
            return error_set(err, "%s: expected true or false", label);
        return KPO_OK;
    }
    case CONFIG_CHOICE:
        if (!choice_allowed(key->choices, value))
            return error_set(err, "%s: must be one of %s", label, key->choices);
        return KPO_OK;
    default:
        return KPO_OK;
    }
}

int config_validate(const config *cfg, kpo_error *err)
{
    for (size_t k = 0; k < cfg->n_keys; k++)
        if (validate_key(cfg, k, err) != KPO_OK)
            return KPO_ERR;
    return KPO_OK;
}

static const char *value_of(const config *cfg, const char *dotted)
{
    ptrdiff_t k = find_dotted(cfg, dotted);
    if (k < 0) {
        /* A programming error: the caller asked for a key outside its schema. */
        fprintf(stderr, "kpo: internal error: config key '%s' is not in the schema\n", dotted);
        abort();
    }
    return cfg->values[k];
}

int64_t config_get_int(const config *cfg, const char *dotted)
{
    return strtoll(value_of(cfg, dotted), NULL, 10);
}

double config_get_double(const config *cfg, const char *dotted)
{
    return strtod(value_of(cfg, dotted), NULL);
}

int config_get_bool(const config *cfg, const char *dotted)
{
    int b = 0;
    config_parse_bool(value_of(cfg, dotted), &b);
    return b;
}

const char *config_get_string(const config *cfg, const char *dotted)
{
    return value_of(cfg, dotted);
}

int config_values_equal(const config_key *key, const char *a, const char *b)
{
    kpo_error ignored;
    switch (key->type) {
    case CONFIG_INT: {
        int64_t x, y;
        if (parse_int64(a, key->name, &x, &ignored) == KPO_OK &&
            parse_int64(b, key->name, &y, &ignored) == KPO_OK)
            return x == y;
        break;
    }
    case CONFIG_DOUBLE: {
        double x, y;
        if (parse_double(a, key->name, &x, &ignored) == KPO_OK &&
            parse_double(b, key->name, &y, &ignored) == KPO_OK)
            return x == y;
        break;
    }
    case CONFIG_BOOL: {
        int x, y;
        if (config_parse_bool(a, &x) == KPO_OK && config_parse_bool(b, &y) == KPO_OK)
            return x == y;
        break;
    }
    default:
        break;
    }
    return strcmp(a, b) == 0;
}

char *config_dump(const config *cfg)
{
    size_t size = 256;
    for (size_t k = 0; k < cfg->n_keys; k++)
        size += strlen(cfg->schema[k].section) + strlen(cfg->schema[k].name) +
                strlen(cfg->values[k]) + strlen(cfg->origins[k]) + 32;
    char *out = malloc(size);
    if (!out)
        return NULL;
    size_t used = 0;
    const char *section = NULL;
    for (size_t k = 0; k < cfg->n_keys; k++) {
        if (!section || strcmp(section, cfg->schema[k].section) != 0) {
            section = cfg->schema[k].section;
            used += (size_t)snprintf(out + used, size - used, "%s[%s]\n", used ? "\n" : "",
                                     section);
        }
        used += (size_t)snprintf(out + used, size - used, "%s = %s  ; %s\n",
                                 cfg->schema[k].name, cfg->values[k], cfg->origins[k]);
    }
    return out;
}

void config_print_schema(const config_key *schema, size_t n_keys)
{
    static const char *const type_names[] = {"int", "number", "bool", "text", "choice"};
    const char *section = NULL;
    for (size_t k = 0; k < n_keys; k++) {
        if (!section || strcmp(section, schema[k].section) != 0) {
            section = schema[k].section;
            printf("\n[%s]\n", section);
        }
        printf("  %-22s %-7s default %-12s %s", schema[k].name, type_names[schema[k].type],
               schema[k].default_value[0] ? schema[k].default_value : "''", schema[k].help);
        if (schema[k].type == CONFIG_CHOICE)
            printf(" (%s)", schema[k].choices);
        printf("\n");
    }
}
