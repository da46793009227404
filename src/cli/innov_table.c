/* Innovation statistics printed as the paper's Table 2 (innov_table.h):
 * aligned columns for people, CSV for tools. */
#include "cli/innov_table.h"

#include <math.h>

void innov_table_format_fraction(char *out, size_t size, double value)
{
    if (isnan(value))
        snprintf(out, size, "-");
    else if (value == 0)
        snprintf(out, size, "0");
    else
        snprintf(out, size, "%.2e", value);
}

static void format_fixed(char *out, size_t size, double value, int decimals)
{
    if (isnan(value))
        snprintf(out, size, "-");
    else
        snprintf(out, size, "%.*f", decimals, value);
}

void innov_table_print_csv_header(FILE *out)
{
    fprintf(out, "run,step,tokens,kurtosis,max_abs_delta,clip_fraction,clip_count,mean_gain,"
                 "mean_sigma,mean_threshold,mean_delta,std_delta\n");
}

void innov_table_print_header(FILE *out)
{
    fprintf(out, "%6s %10s %9s %10s %10s %9s %10s\n", "step", "tokens", "kurtosis",
            "max|delta|", "clip_frac", "mean_K", "threshold");
}

void innov_table_print_row(FILE *out, const char *label, const char *step_text,
                           const innov_stats *s, int csv)
{
    double kurtosis = innov_stats_kurtosis(s), clip = innov_stats_clip_fraction(s);
    double max_abs = s->count > 0 ? s->max_abs : NAN;
    if (csv) {
        fprintf(out, "%s,%s,%.0f,%.17g,%.17g,%.17g,%.0f,%.17g,%.17g,%.17g,%.17g,%.17g\n", label,
                step_text, s->count, kurtosis, max_abs, clip, s->clip_count,
                innov_stats_mean_gain(s), innov_stats_mean_sigma(s),
                innov_stats_mean_threshold(s), s->count > 0 ? s->mean : NAN,
                sqrt(innov_stats_variance(s)));
        return;
    }
    char kurt_text[32], max_text[32], clip_text[32], gain_text[32], thr_text[32];
    format_fixed(kurt_text, sizeof kurt_text, kurtosis, 2);
    format_fixed(max_text, sizeof max_text, max_abs, 4);
    innov_table_format_fraction(clip_text, sizeof clip_text, clip);
    format_fixed(gain_text, sizeof gain_text, innov_stats_mean_gain(s), 5);
    format_fixed(thr_text, sizeof thr_text, innov_stats_mean_threshold(s), 4);
    fprintf(out, "%6s %10.0f %9s %10s %10s %9s %10s\n", step_text, s->count, kurt_text, max_text,
            clip_text, gain_text, thr_text);
}
