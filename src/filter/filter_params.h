/* The filter's parameters, one table (core/param_table.h): the [filter]
 * section of `kpo train`'s config, filter_config_default, and the options
 * of kpo filter / simulate / gain all come from it. Adding a saturation
 * parameter: a field in filter_config (filter.h) and a row here. */
#ifndef KPO_FILTER_FILTER_PARAMS_H
#define KPO_FILTER_FILTER_PARAMS_H

#include <stddef.h>

#include "core/param_table.h"
#include "filter/filter.h"

/* Rows stored in a filter_config; implementation and official_width are
 * the trainer's (stored by train_settings_from_config, no CLI option). */
extern const param_def FILTER_PARAMS[];
extern const size_t FILTER_PARAMS_LEN;

/* "none", "sigma", ...: filter_mode's names, indexed by the enum. */
extern const char *const FILTER_MODE_NAMES[FILTER_MODE_COUNT];

/* The one place c_state gets its default: 0 (unset) becomes kappa. */
void filter_config_resolve(filter_config *cfg);

#endif
