/* Config changes of a resumed run in its run file, next to the root
 * `config` attribute (the config the run started with):
 *
 *   /config_changes/step-%08lld   a group per accepted change, attrs:
 *       step        the checkpoint resumed from (the change applies to the
 *                   steps after it)
 *       changes     "learner.objective: kpo -> grpo; optim.lr: 0.001 -> 0.5"
 *       config      the resolved config in effect from step + 1 (INI text,
 *                   as the root attribute)
 *       allowed_by  what accepted it ("run.allow_config_change = true") */
#ifndef KPO_IO_RUNFILE_CONFIG_H
#define KPO_IO_RUNFILE_CONFIG_H

#include <stdint.h>

#include "core/error.h"

/* On a resume from the checkpoint of step: drops the records of steps >= step
 * (those steps are run again), then, when changes is not NULL, records this
 * change. Opens and closes path itself: call it while the run file is not
 * open. */
int runfile_record_config_change(const char *path, int64_t step, const char *changes,
                                 const char *config_text, const char *allowed_by,
                                 kpo_error *err);

#endif
