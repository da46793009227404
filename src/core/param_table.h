/* A part's parameters as one table: each row is an INI key (name, type,
 * default text, bounds, choices, help), where the loader stores it in the
 * part's settings struct, and optionally the command-line option that sets
 * it. The INI schema (config_key rows under a section), the defaults, the
 * loading of a validated config and the CLI options of the filter commands
 * are all derived from these tables (docs/design-notes.md). */
#ifndef KPO_CORE_PARAM_TABLE_H
#define KPO_CORE_PARAM_TABLE_H

#include <stddef.h>

#include "core/config.h"
#include "core/error.h"

typedef struct param_def {
    const char *name;          /* INI key within its section */
    config_type type;
    const char *default_value; /* text, as a user would write it */
    double min, max;           /* inclusive bounds for INT and DOUBLE */
    /* CHOICE: the valid texts, either "a|b|c" or an enum's name table
     * (names[value], n_names entries) joined with '|'. */
    const char *choices;
    const char *const *names;
    int n_names;
    /* CHOICE with `choices` text: the stored value of the k-th choice
     * (NULL: k). With `names`: the index in names. */
    const int *values;
    const char *help;
    /* Where the loader stores the value in the part's struct; size 0: the
     * key is read by hand by its user (config_get_*). INT: int or int64_t
     * by size; DOUBLE: double; BOOL: int; STRING: const char * (into the
     * config); CHOICE: an int-sized enum. */
    size_t offset, size;
    /* The command-line option ("c-state"), NULL when none; metavar NULL
     * for a BOOL flag, which sets the opposite of the default. cli_help
     * gets " (default X)" appended unless it has "(default" already. */
    const char *cli, *metavar, *cli_help;
    int cli_rank; /* where the option is listed in --help: 1, 2, ...; 0: after those, in order */
} param_def;

/* offset and size of member of type T, for a row's storage. */
#define PARAM_AT(T, member) offsetof(T, member), sizeof(((T *)0)->member)
#define PARAM_NOWHERE 0, 0

/* The bound of a key with no natural limit. */
#define PARAM_BIG 1e15

/* The row of name, or NULL. */
const param_def *param_table_find(const param_def *rows, size_t n, const char *name);

/* A CHOICE row's "a|b|c" (joined from names when needed) into out. */
void param_choices_text(const param_def *row, char *out, size_t size);

/* rows as config_key entries of section into out (n entries). Choices
 * joined from names are malloc'ed once and kept for the process. */
void param_table_schema(const char *section, const param_def *rows, size_t n, config_key *out);

/* Stores text, valid for row (config_validate's checks), into dst. */
int param_store(const param_def *row, const char *text, void *dst, kpo_error *err);

/* Every stored row's default into dst. */
void param_table_defaults(const param_def *rows, size_t n, void *dst);

/* Every stored row of section from a validated cfg into dst. */
int param_table_load(const config *cfg, const char *section, const param_def *rows, size_t n,
                     void *dst, kpo_error *err);

#endif
