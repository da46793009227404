/* Typed INI configuration: a schema lists every key with its type, default,
 * range and help; files (read with inih) and `--set section.key=value`
 * overrides fill it. Unknown keys, bad values and out-of-range numbers are
 * errors naming the file, line and key, and listing what is valid. */
#ifndef KPO_CORE_CONFIG_H
#define KPO_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef enum config_type {
    CONFIG_INT,
    CONFIG_DOUBLE,
    CONFIG_BOOL,   /* true/false, yes/no, 1/0 */
    CONFIG_STRING,
    CONFIG_CHOICE, /* one of `choices`, "a|b|c" */
} config_type;

typedef struct config_key {
    const char *section;
    const char *name;
    config_type type;
    const char *default_value; /* text, as a user would write it */
    double min, max;           /* inclusive bounds for INT and DOUBLE */
    const char *choices;       /* CHOICE only */
    const char *help;
} config_key;

typedef struct config {
    const config_key *schema;
    size_t n_keys;
    char **values;  /* [n_keys] current text of each key */
    char **origins; /* [n_keys] "default", "FILE:LINE" or "--set" */
} config;

int config_init(config *cfg, const config_key *schema, size_t n_keys, kpo_error *err);
void config_free(config *cfg);

int config_load_file(config *cfg, const char *path, kpo_error *err);
/* "section.key=value" */
int config_apply_override(config *cfg, const char *assignment, kpo_error *err);
/* Checks every value against its type and range. */
int config_validate(const config *cfg, kpo_error *err);

/* Accessors for validated configs; the key must exist in the schema. */
int64_t config_get_int(const config *cfg, const char *dotted);
double config_get_double(const config *cfg, const char *dotted);
int config_get_bool(const config *cfg, const char *dotted);
const char *config_get_string(const config *cfg, const char *dotted);

/* true/yes/on/1 or false/no/off/0, any case; KPO_ERR otherwise. */
int config_parse_bool(const char *text, int *out);

/* Whether two texts are the same value of key: numbers by value (1e-3 and
 * 0.001 are equal), booleans by meaning (yes and true), text byte for
 * byte. A text that does not parse compares as text. */
int config_values_equal(const config_key *key, const char *a, const char *b);

/* The resolved configuration as INI text, every key, with its origin as a
 * comment; malloc'ed. Reading it back gives the same configuration. */
char *config_dump(const config *cfg);

/* Prints the schema (section, key, type, default, help) for --help. */
void config_print_schema(const config_key *schema, size_t n_keys);

#endif
