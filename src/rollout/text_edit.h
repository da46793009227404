/* In-place edits of malloc'ed strings with Python str semantics, for the
 * answer normalisers ported from Python graders. Each returns 0, or -1 on
 * allocation failure (the string is then left as it was). */
#ifndef KPO_ROLLOUT_TEXT_EDIT_H
#define KPO_ROLLOUT_TEXT_EDIT_H

#include <stdbool.h>
#include <stddef.h>

/* s.replace(from, to) */
int edit_replace(char **s, const char *from, const char *to);

/* re.sub(pattern, replacement, s) for the patterns of the graders: PCRE2
 * with UTF and Unicode classes, '.' stopping at \n as Python's does.
 * replacement uses PCRE2 syntax ($2 for \2, $$ for a literal $). */
int edit_regex_sub(char **s, const char *pattern, const char *replacement);

/* Python str.strip(): leading and trailing whitespace. */
int edit_strip(char **s);

/* Keeps s[begin, end) only. */
int edit_keep(char **s, size_t begin, size_t end);

/* Byte length of the character starting at s (an invalid byte counts as one). */
size_t edit_char_len(const char *s);

/* Number of characters (code points) in s. */
size_t edit_char_count(const char *s);

/* Occurrences of needle in s (non-overlapping, as str.split counts them). */
size_t edit_count(const char *s, const char *needle);

/* Last occurrence of needle in s, or NULL. */
const char *edit_rfind(const char *s, const char *needle);

#endif
