/* Prints innovation statistics as the paper's Table 2 (plus mean gain and
 * threshold), aligned for people or as CSV for tools. */
#ifndef KPO_CLI_INNOV_TABLE_H
#define KPO_CLI_INNOV_TABLE_H

#include <stdint.h>
#include <stdio.h>

#include "filter/innov_stats.h"

/* CSV header matching innov_table_print_row(..., csv = 1). */
void innov_table_print_csv_header(FILE *out);
void innov_table_print_header(FILE *out);

/* One row; label is the run name in CSV, step_text the step ("all" for the
 * whole run). */
void innov_table_print_row(FILE *out, const char *label, const char *step_text,
                           const innov_stats *s, int csv);

/* "1.2e-07", "0" or "-" for NaN: clip fractions span many decades. */
void innov_table_format_fraction(char *out, size_t size, double value);

#endif
