/* Group-relative advantages (algorithms.md §2, verl's
 * compute_grpo_outcome_advantage). */
#ifndef KPO_LEARNER_ADVANTAGE_H
#define KPO_LEARNER_ADVANTAGE_H

#include <stdint.h>

#include "core/error.h"

/* rewards and advantages: [n_groups * group_size], group-major (the G
 * responses of one prompt are contiguous).
 *   A_i = (r_i - mean_g) / (std_g + eps)   (normalize_std, GRPO)
 *   A_i =  r_i - mean_g                    (Dr. GRPO)
 * std is the unbiased (n - 1) estimate, as torch.std; a group whose rewards
 * are all equal gets A = 0; a group of one gets mean 0 and std 1, as verl. */
int advantage_grpo(const double *rewards, int64_t n_groups, int group_size, int normalize_std,
                   double eps, double *advantages, kpo_error *err);

#endif
