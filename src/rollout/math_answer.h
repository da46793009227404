/* Answer extraction and normalisation of the MATH benchmark (Hendrycks et
 * al.; verl math_reward.py, algorithms.md §3) and of DAPO's Minerva-style
 * normaliser (verl math_dapo.py). Strings are malloc'ed; functions return
 * KPO_OK or KPO_ERR (out of memory) unless said otherwise. */
#ifndef KPO_ROLLOUT_MATH_ANSWER_H
#define KPO_ROLLOUT_MATH_ANSWER_H

#include <stdbool.h>

#include "core/error.h"

/* last_boxed_only_string: "\boxed{...}" (or "\fbox{...}", or "\boxed x")
 * as written, *out = NULL when there is none or its braces never close. */
int math_last_boxed(const char *text, char **out, kpo_error *err);

/* remove_boxed: the content of a math_last_boxed result; false when it is
 * not of the form \boxed{...}, \fbox{...} or "\boxed x" (where Python's
 * assertion would fail). */
bool math_remove_boxed(const char *boxed, char **out, kpo_error *err);

/* strip_string. Returns false where the Python raises (an unbalanced unit
 * split, \sqrt or \frac at the very end), in which case is_equiv compares
 * the raw strings. */
bool math_strip_string(const char *text, char **out, kpo_error *err);

/* is_equiv: strip_string equality, raw equality when either raises. */
int math_is_equiv(const char *a, const char *b, bool *equal, kpo_error *err);

/* normalize_final_answer (Minerva, lm-eval-harness; verl math_dapo.py). */
int math_normalize_minerva(const char *text, char **out, kpo_error *err);

/* mathd_normalize_answer (DeepScaleR's grader as used by KPO): strip,
 * unwrap one enclosing \text{...}, then strip_string (the unstripped text
 * where strip_string raises). */
int math_normalize_mathd(const char *text, char **out, kpo_error *err);

/* The numeric part of DeepScaleR's sympy path that needs no CAS: both
 * strings are plain numbers (integers with or without thousands commas,
 * decimals, a/b or \frac{a}{b}, optionally signed) with equal values. */
bool math_numbers_equal(const char *a, const char *b);

#endif
