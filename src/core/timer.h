/* Wall-clock seconds from a monotonic clock, for phase timings. */
#ifndef KPO_CORE_TIMER_H
#define KPO_CORE_TIMER_H

double timer_now(void);

#endif
