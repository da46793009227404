/* The long-option parser of the subcommands (cli_options.h): --name value,
 * --name=value, --flag, positionals in between, help text. */
#include "cli/cli_options.h"

#include <stdint.h>
#include <string.h>

#include "core/parse.h"

static cli_option *find_option(const cli_command_spec *spec, const char *name, size_t name_len)
{
    for (size_t k = 0; k < spec->n_options; k++)
        if (strlen(spec->options[k].name) == name_len &&
            strncmp(spec->options[k].name, name, name_len) == 0)
            return &spec->options[k];
    return NULL;
}

static int unknown_option(const cli_command_spec *spec, const char *arg, kpo_error *err)
{
    char valid[768] = "";
    size_t used = 0;
    for (size_t k = 0; k < spec->n_options && used < sizeof valid; k++)
        used += (size_t)snprintf(valid + used, sizeof valid - used, "%s--%s", k ? ", " : "",
                                 spec->options[k].name);
    return error_set(err, "kpo %s: unknown option '%s' (valid: %s)", spec->name, arg, valid);
}

int cli_parse(const cli_command_spec *spec, int argc, char **argv, const char **positional,
              size_t max_positional, size_t *n_positional, int *wants_help, kpo_error *err)
{
    *n_positional = 0;
    *wants_help = 0;
    for (size_t k = 0; k < spec->n_options; k++)
        spec->options[k].value = NULL;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            *wants_help = 1;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0 || strlen(arg) == 2) {
            if (*n_positional >= max_positional)
                return error_set(err, "kpo %s: unexpected argument '%s' (usage: kpo %s %s)",
                                 spec->name, arg, spec->name, spec->synopsis);
            positional[(*n_positional)++] = arg;
            continue;
        }
        const char *name = arg + 2, *equals = strchr(name, '=');
        size_t name_len = equals ? (size_t)(equals - name) : strlen(name);
        cli_option *opt = find_option(spec, name, name_len);
        if (!opt)
            return unknown_option(spec, arg, err);
        if (!opt->metavar) {
            if (equals)
                return error_set(err, "kpo %s: --%s takes no value", spec->name, opt->name);
            opt->value = "1";
        } else if (equals) {
            opt->value = equals + 1;
        } else if (i + 1 < argc) {
            opt->value = argv[++i];
        } else {
            return error_set(err, "kpo %s: --%s needs a value (%s)", spec->name, opt->name,
                             opt->metavar);
        }
    }
    return KPO_OK;
}

const char *cli_get(const cli_command_spec *spec, const char *name)
{
    cli_option *opt = find_option(spec, name, strlen(name));
    return opt ? opt->value : NULL;
}

size_t cli_get_all(const cli_command_spec *spec, int argc, char **argv, const char *name,
                   const char **values, size_t max)
{
    size_t n = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0 || strlen(arg) == 2)
            continue;
        const char *opt_name = arg + 2, *equals = strchr(opt_name, '=');
        size_t name_len = equals ? (size_t)(equals - opt_name) : strlen(opt_name);
        const cli_option *opt = find_option(spec, opt_name, name_len);
        if (!opt || !opt->metavar)
            continue;
        /* Same reading as cli_parse, so a value that looks like an option
         * ("--bench --x") is taken as the value it was there. */
        const char *value = equals ? equals + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (value && strcmp(opt->name, name) == 0) {
            if (n < max)
                values[n] = value;
            n++;
        }
    }
    return n;
}

void cli_print_help(FILE *out, const cli_command_spec *spec)
{
    fprintf(out, "usage: kpo %s %s\n\n%s\n\noptions:\n", spec->name, spec->synopsis,
            spec->summary);
    for (size_t k = 0; k < spec->n_options; k++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", spec->options[k].name,
                 spec->options[k].metavar ? " " : "",
                 spec->options[k].metavar ? spec->options[k].metavar : "");
        fprintf(out, "  %-26s %s\n", left, spec->options[k].help);
    }
}

int cli_get_double(const cli_command_spec *spec, const char *name, double fallback, double *out,
                   kpo_error *err)
{
    const char *text = cli_get(spec, name);
    if (!text) {
        *out = fallback;
        return KPO_OK;
    }
    char label[64];
    snprintf(label, sizeof label, "--%s", name);
    return parse_double(text, label, out, err);
}

int cli_get_int64(const cli_command_spec *spec, const char *name, long long fallback,
                  long long *out, kpo_error *err)
{
    const char *text = cli_get(spec, name);
    if (!text) {
        *out = fallback;
        return KPO_OK;
    }
    char label[64];
    snprintf(label, sizeof label, "--%s", name);
    int64_t value;
    if (parse_int64(text, label, &value, err) != KPO_OK)
        return KPO_ERR;
    *out = (long long)value;
    return KPO_OK;
}
