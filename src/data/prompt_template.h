/* Prompt templates: the instruction wrapped around a raw problem. Built-ins
 * by name (dapo, kpo, boxed, raw) or a user's text with {problem}. */
#ifndef KPO_DATA_PROMPT_TEMPLATE_H
#define KPO_DATA_PROMPT_TEMPLATE_H

#include "core/error.h"
#include "tokenizer/text_buf.h"

/* DAPO-Math-17k's instruction (DAPO README; algorithms.md §3). */
extern const char PROMPT_TEMPLATE_DAPO[];
/* KPO's training instruction (kpo_math.py): asks for "####" although the
 * reward reads \boxed{} (algorithms.md §1). */
extern const char PROMPT_TEMPLATE_KPO[];
/* The MATH-style \boxed{} instruction used for evaluation. */
extern const char PROMPT_TEMPLATE_BOXED[];

/* name_or_text: "dapo", "kpo", "boxed", "raw", or a template holding
 * {problem} (where the two characters \n stand for a newline, since config
 * values are one line). *out is malloc'ed. */
int prompt_template_resolve(const char *name_or_text, char **out, kpo_error *err);

/* Replaces every {problem} in template_text with problem. */
int prompt_template_render(const char *template_text, const char *problem, text_buf *out,
                           kpo_error *err);

#endif
