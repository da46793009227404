/* kpo stats: the pooled two-proportion z-test (algorithms.md §6). */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "core/parse.h"
#include "stats/proportion_test.h"

/* "0.4859" or "48.59%": bare numbers must already be proportions, so that
 * 1 can never mean both 100% and 1%. */
static int read_proportion(const cli_command_spec *spec, const char *name, double *out,
                           kpo_error *err)
{
    const char *text = cli_get(spec, name);
    char label[32], buffer[64];
    snprintf(label, sizeof label, "--%s", name);
    if (!text)
        return error_set(err, "%s is required", label);
    size_t len = strlen(text);
    int percent = len > 0 && text[len - 1] == '%';
    if (percent) {
        snprintf(buffer, sizeof buffer, "%.*s", (int)(len - 1), text);
        text = buffer;
    }
    if (parse_double(text, label, out, err) != KPO_OK)
        return KPO_ERR;
    if (percent)
        *out /= 100.0;
    if (*out < 0 || *out > 1)
        return error_set(err, "%s: %s is not a proportion in [0, 1] (write 0.4859 or 48.59%%)",
                         label, cli_get(spec, name));
    return KPO_OK;
}

int cmd_stats(int argc, char **argv)
{
    cli_option options[] = {
        {"p1", "P1", "accuracy of arm 1, as 0.4859 or 48.59%", NULL},
        {"n1", "N1", "trials of arm 1 (problems x samples)", NULL},
        {"p2", "P2", "accuracy of arm 2", NULL},
        {"n2", "N2", "trials of arm 2", NULL},
    };
    cli_command_spec spec = {"stats", "--p1 P1 --n1 N1 --p2 P2 --n2 N2",
                             "Pooled two-proportion z-test with its two-sided p-value. Samples "
                             "of one problem are correlated, so treat it as optimistic; a "
                             "paired test over problems is stricter.",
                             options, sizeof options / sizeof options[0]};
    size_t n_positional;
    int status = command_start(&spec, argc, argv, NULL, 0, &n_positional);
    if (status >= 0)
        return status;
    kpo_error err;
    double p1, p2, n1, n2;
    if (!cli_get(&spec, "n1") || !cli_get(&spec, "n2"))
        return command_fail("kpo stats: --n1 and --n2 are required");
    if (read_proportion(&spec, "p1", &p1, &err) != KPO_OK ||
        read_proportion(&spec, "p2", &p2, &err) != KPO_OK ||
        cli_get_double(&spec, "n1", 0, &n1, &err) != KPO_OK ||
        cli_get_double(&spec, "n2", 0, &n2, &err) != KPO_OK)
        return command_fail(err.message);
    proportion_test t;
    if (proportion_test_pooled(p1, n1, p2, n2, &t, &err) != KPO_OK)
        return command_fail(err.message);
    printf("pooled two-proportion z-test\n");
    printf("  arm 1       p = %.4f  n = %g\n", p1, n1);
    printf("  arm 2       p = %.4f  n = %g\n", p2, n2);
    printf("  difference  %+.4f (%+.2f points)\n", t.difference, 100 * t.difference);
    printf("  pooled p    %.4f   SE = %.5f\n", t.pooled, t.std_error);
    printf("  z = %.3f   two-sided p = %.3f\n", t.z, t.p_value);
    return 0;
}
