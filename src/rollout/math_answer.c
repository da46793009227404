/* Answer extraction and normalisation (math_answer.h): the MATH benchmark's
 * and DAPO's Minerva-style normalisers, ported from verl. */
#include "rollout/math_answer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rollout/text_edit.h"
#include "tokenizer/text_buf.h"

static int oom(kpo_error *err)
{
    return error_set(err, "out of memory normalising an answer");
}

static char *dup_range(const char *s, size_t len)
{
    char *out = malloc(len + 1);
    if (out) {
        memcpy(out, s, len);
        out[len] = '\0';
    }
    return out;
}

int math_last_boxed(const char *text, char **out, kpo_error *err)
{
    *out = NULL;
    const char *spaced = edit_rfind(text, "\\boxed ");
    if (spaced) {
        /* "\boxed " + split("\boxed ")[-1].split("$")[0] */
        const char *content = spaced + strlen("\\boxed ");
        size_t len = strcspn(content, "$");
        text_buf b;
        text_buf_init(&b);
        text_buf_append_str(&b, "\\boxed ");
        text_buf_append(&b, content, len);
        *out = text_buf_take(&b);
        return *out ? KPO_OK : oom(err);
    }
    const char *start = edit_rfind(text, "\\boxed");
    if (!start)
        start = edit_rfind(text, "\\fbox");
    if (!start)
        return KPO_OK;
    long open = 0;
    for (const char *p = start; *p; p++) {
        if (*p == '{')
            open++;
        if (*p == '}' && --open == 0) {
            *out = dup_range(start, (size_t)(p + 1 - start));
            return *out ? KPO_OK : oom(err);
        }
    }
    return KPO_OK;
}

bool math_remove_boxed(const char *boxed, char **out, kpo_error *err)
{
    *out = NULL;
    size_t len = strlen(boxed);
    const char *content = NULL;
    size_t content_len = 0;
    if (strstr(boxed, "\\boxed ")) {
        if (strncmp(boxed, "\\boxed ", 7) == 0) {
            content = boxed + 7;
            content_len = len - 7;
        }
    } else {
        /* verl accepts only "\boxed{"; \fbox{ is accepted here too, since
         * last_boxed_only_string returns it (see docs/text.md). */
        static const char *const left[] = {"\\boxed{", "\\fbox{"};
        for (int k = 0; k < 2 && !content; k++) {
            size_t n = strlen(left[k]);
            if (len > n && strncmp(boxed, left[k], n) == 0 && boxed[len - 1] == '}') {
                content = boxed + n;
                content_len = len - n - 1;
            }
        }
    }
    if (!content)
        return false;
    *out = dup_range(content, content_len);
    if (!*out) {
        oom(err);
        return false;
    }
    return true;
}

/* The Python helpers below return 1 when done, 0 where the Python raises,
 * -1 when memory ran out. */

/* Replaces *s with the buffer's contents. */
static int adopt(char **s, text_buf *b)
{
    char *out = text_buf_take(b);
    if (!out)
        return -1;
    free(*s);
    *s = out;
    return 1;
}

static int remove_right_units(char **s)
{
    size_t n = edit_count(*s, "\\text{ ");
    if (n == 0)
        return 1;
    if (n != 1)
        return 0; /* assert len(splits) == 2 */
    return edit_keep(s, 0, (size_t)(strstr(*s, "\\text{ ") - *s)) == 0 ? 1 : -1;
}

static int fix_sqrt(char **s)
{
    static const char SQRT[] = "\\sqrt";
    const char *p = strstr(*s, SQRT);
    if (!p)
        return 1;
    text_buf b;
    text_buf_init(&b);
    text_buf_append(&b, *s, (size_t)(p - *s));
    while (p) {
        const char *part = p + strlen(SQRT), *next = strstr(part, SQRT);
        size_t part_len = next ? (size_t)(next - part) : strlen(part);
        if (part_len == 0) { /* split[0] of an empty string */
            text_buf_free(&b);
            return 0;
        }
        if (part[0] != '{') {
            size_t a = edit_char_len(part);
            text_buf_append_str(&b, "\\sqrt{");
            text_buf_append(&b, part, a);
            text_buf_append_str(&b, "}");
            text_buf_append(&b, part + a, part_len - a);
        } else {
            text_buf_append_str(&b, SQRT);
            text_buf_append(&b, part, part_len);
        }
        p = next;
    }
    return adopt(s, &b);
}

static int fix_fracs(char **s)
{
    static const char FRAC[] = "\\frac";
    const char *p = strstr(*s, FRAC);
    if (!p)
        return 1;
    text_buf b;
    text_buf_init(&b);
    text_buf_append(&b, *s, (size_t)(p - *s));
    while (p) {
        const char *part = p + strlen(FRAC), *next = strstr(part, FRAC);
        size_t part_len = next ? (size_t)(next - part) : strlen(part);
        text_buf_append_str(&b, FRAC);
        if (part_len == 0) { /* substr[0] of an empty string */
            text_buf_free(&b);
            return 0;
        }
        size_t a = edit_char_len(part), b_len = a < part_len ? edit_char_len(part + a) : 0;
        if (part[0] == '{') {
            text_buf_append(&b, part, part_len);
        } else if (b_len == 0) { /* fewer than two characters: give the input back */
            text_buf_free(&b);
            return 1;
        } else {
            text_buf_append_str(&b, "{");
            text_buf_append(&b, part, a);
            text_buf_append_str(&b, "}");
            if (part[a] != '{') {
                text_buf_append_str(&b, "{");
                text_buf_append(&b, part + a, b_len);
                text_buf_append_str(&b, "}");
            } else {
                text_buf_append(&b, part + a, b_len);
            }
            text_buf_append(&b, part + a + b_len, part_len - a - b_len);
        }
        p = next;
    }
    return adopt(s, &b);
}

/* int(x) == x written back: optional '-', no leading zeros, not "-0". */
static bool is_canonical_int(const char *s, size_t len)
{
    size_t k = s[0] == '-' ? 1 : 0;
    if (k >= len || (s[k] == '0' && len - k > 1) || (k == 1 && s[1] == '0'))
        return false;
    for (; k < len; k++)
        if (s[k] < '0' || s[k] > '9')
            return false;
    return true;
}

static int fix_a_slash_b(char **s)
{
    if (edit_count(*s, "/") != 1)
        return 1;
    const char *slash = strchr(*s, '/');
    size_t a_len = (size_t)(slash - *s), b_len = strlen(slash + 1);
    if (!is_canonical_int(*s, a_len) || !is_canonical_int(slash + 1, b_len))
        return 1;
    text_buf b;
    text_buf_init(&b);
    text_buf_append_str(&b, "\\frac{");
    text_buf_append(&b, *s, a_len);
    text_buf_append_str(&b, "}{");
    text_buf_append(&b, slash + 1, b_len);
    text_buf_append_str(&b, "}");
    return adopt(s, &b);
}

/* "x = 5" -> "5" when there is one '=' and at most two characters before it. */
static int drop_short_lhs(char **s)
{
    if (edit_count(*s, "=") != 1)
        return 0;
    const char *eq = strchr(*s, '=');
    char *lhs = dup_range(*s, (size_t)(eq - *s));
    if (!lhs)
        return -1;
    size_t lhs_chars = edit_char_count(lhs);
    free(lhs);
    if (lhs_chars <= 2)
        return edit_keep(s, (size_t)(eq + 1 - *s), strlen(*s));
    return 0;
}

bool math_strip_string(const char *text, char **out, kpo_error *err)
{
    static const char *const SUBS[][2] = {
        {"\n", ""},        {"\\!", ""},       {"\\\\", "\\"},     {"tfrac", "frac"},
        {"dfrac", "frac"}, {"\\left", ""},    {"\\right", ""},    {"^{\\circ}", ""},
        {"^\\circ", ""},   {"\\$", ""},
    };
    char *s = strdup(text);
    int rc = s ? 1 : -1;
    for (size_t k = 0; k < sizeof SUBS / sizeof SUBS[0] && rc == 1; k++)
        rc = edit_replace(&s, SUBS[k][0], SUBS[k][1]) == 0 ? 1 : -1;
    if (rc == 1)
        rc = remove_right_units(&s);
    if (rc == 1)
        rc = edit_replace(&s, "\\%", "") || edit_replace(&s, " .", " 0.") ||
                     edit_replace(&s, "{.", "{0.")
                 ? -1
                 : 1;
    if (rc == 1 && s[0] == '.') {
        text_buf b;
        text_buf_init(&b);
        text_buf_append_str(&b, "0");
        text_buf_append_str(&b, s);
        char *grown = text_buf_take(&b);
        rc = grown ? 1 : -1;
        if (grown) {
            free(s);
            s = grown;
        }
    }
    if (rc == 1 && s[0] != '\0') {
        rc = drop_short_lhs(&s) < 0 ? -1 : 1;
        if (rc == 1)
            rc = fix_sqrt(&s);
        if (rc == 1)
            rc = edit_replace(&s, " ", "") == 0 ? 1 : -1;
        if (rc == 1)
            rc = fix_fracs(&s);
        if (rc == 1 && strcmp(s, "0.5") == 0)
            rc = edit_replace(&s, "0.5", "\\frac{1}{2}") == 0 ? 1 : -1;
        if (rc == 1)
            rc = fix_a_slash_b(&s);
    }
    if (rc != 1) {
        free(s);
        *out = NULL;
        if (rc < 0)
            oom(err);
        return false;
    }
    *out = s;
    return true;
}

int math_is_equiv(const char *a, const char *b, bool *equal, kpo_error *err)
{
    char *sa = NULL, *sb = NULL;
    kpo_error local;
    error_clear(&local);
    bool ok = math_strip_string(a, &sa, &local) && math_strip_string(b, &sb, &local);
    int status = KPO_OK;
    if (local.message[0])
        status = error_set(err, "%s", local.message);
    *equal = ok ? strcmp(sa, sb) == 0 : strcmp(a, b) == 0;
    free(sa);
    free(sb);
    return status;
}

int math_normalize_minerva(const char *text, char **out, kpo_error *err)
{
    static const char *const SUBS[][2] = {
        {"an ", ""},           {"a ", ""},      {".$", "$"},          {"\\$", ""},
        {"\\ ", ""},           {" ", ""},       {"mbox", "text"},     {",\\text{and}", ","},
        {"\\text{and}", ","},  {"\\text{m}", "\\text{}"},
    };
    static const char *const REMOVED[] = {
        "square", "ways", "integers", "dollars", "mph", "inches", "hours", "km", "units",
        "\\ldots", "sue", "points", "feet", "minutes", "digits", "cents", "degrees", "cm", "gm",
        "pounds", "meters", "meals", "edges", "students", "childrentickets", "multiples",
        "\\text{s}", "\\text{.}", "\\text{\ns}", "\\text{}^2", "\\text{}^3", "\\text{\n}",
        "\\text{}", "\\mathrm{th}", "^\\circ", "^{\\circ}", "\\;", ",\\!", "{,}", "\"", "\\dots",
    };
    /* re.sub patterns and replacements, in order (PCRE2 replacement syntax). */
    static const char *const REGEX[][2] = {
        {"(.*?)(\\$)(.*?)(\\$)(.*)", "$$$3$$"},
        {"(\\\\text\\{)(.*?)(\\})", "$2"},
        {"(\\\\textbf\\{)(.*?)(\\})", "$2"},
        {"(\\\\overline\\{)(.*?)(\\})", "$2"},
        /* Greedy, as verl's (.*): a lazy match stops at the first '}' and
         * turns \boxed{\frac{14}{3}} into \frac{14{3}. */
        {"(\\\\boxed\\{)(.*)(\\})", "$2"},
        {"(frac)([^{])(.)", "frac{$2}{$3}"},
        {"(sqrt)([^{])", "sqrt{$2}"},
    };
    const char *eq = strrchr(text, '=');
    char *s = strdup(eq ? eq + 1 : text);
    int failed = !s;
    for (size_t k = 0; k < sizeof SUBS / sizeof SUBS[0] && !failed; k++)
        failed = edit_replace(&s, SUBS[k][0], SUBS[k][1]);
    for (size_t k = 0; k < sizeof REMOVED / sizeof REMOVED[0] && !failed; k++)
        failed = edit_replace(&s, REMOVED[k], "");
    for (size_t k = 0; k < sizeof REGEX / sizeof REGEX[0] && !failed; k++)
        failed = edit_regex_sub(&s, REGEX[k][0], REGEX[k][1]);
    if (!failed)
        failed = edit_replace(&s, "$", "");
    if (!failed) {
        /* Digits with commas: drop the commas ("1,000" -> "1000"). */
        bool digits = false, other = false;
        for (const char *p = s; *p; p++) {
            digits |= *p >= '0' && *p <= '9';
            other |= !(*p >= '0' && *p <= '9') && *p != ',';
        }
        if (digits && !other)
            failed = edit_replace(&s, ",", "");
    }
    if (!failed)
        failed = edit_strip(&s);
    if (failed) {
        free(s);
        return oom(err);
    }
    *out = s;
    return KPO_OK;
}

int math_normalize_mathd(const char *text, char **out, kpo_error *err)
{
    char *s = strdup(text);
    if (!s || edit_strip(&s) != 0) {
        free(s);
        return oom(err);
    }
    /* ^\\text\{(?P<text>.+?)\}$ : one enclosing \text{...} on one line */
    size_t len = strlen(s);
    if (len > strlen("\\text{}") && strncmp(s, "\\text{", 6) == 0 && s[len - 1] == '}' &&
        !memchr(s + 6, '\n', len - 7)) {
        edit_keep(&s, 6, len - 1);
        edit_strip(&s);
    }
    char *stripped;
    kpo_error local;
    error_clear(&local);
    if (math_strip_string(s, &stripped, &local)) {
        free(s);
        s = stripped;
    } else if (local.message[0]) {
        free(s);
        return error_set(err, "%s", local.message);
    }
    *out = s;
    return KPO_OK;
}

/* A plain number's value: [-]digits[,ddd...][.digits], a/b or \frac{a}{b}. */
static bool parse_plain_number(const char *s, long double *value)
{
    if (strncmp(s, "\\frac{", 6) == 0) {
        const char *mid = strstr(s, "}{");
        size_t len = strlen(s);
        if (!mid || s[len - 1] != '}')
            return false;
        char *num = dup_range(s + 6, (size_t)(mid - s - 6));
        char *den = dup_range(mid + 2, (size_t)(s + len - 1 - mid - 2));
        long double a, b;
        bool ok = num && den && parse_plain_number(num, &a) && parse_plain_number(den, &b) &&
                  b != 0;
        free(num);
        free(den);
        if (ok)
            *value = a / b;
        return ok;
    }
    const char *slash = strchr(s, '/');
    if (slash && !strchr(slash + 1, '/')) {
        char *num = dup_range(s, (size_t)(slash - s));
        long double a, b;
        bool ok = num && parse_plain_number(num, &a) && parse_plain_number(slash + 1, &b) &&
                  b != 0;
        free(num);
        if (ok)
            *value = a / b;
        return ok;
    }
    char digits[128];
    size_t n = 0, run = 0;
    bool seen_digit = false, seen_point = false, commas = false;
    for (const char *p = s; *p; p++) {
        if (n + 1 >= sizeof digits)
            return false;
        if (p == s && (*p == '-' || *p == '+')) {
            digits[n++] = *p;
        } else if (*p >= '0' && *p <= '9') {
            digits[n++] = *p;
            seen_digit = true;
            run++;
        } else if (*p == ',') {
            /* thousands separators: groups of exactly three digits */
            if (seen_point || run == 0 || run > 3 || (commas && run != 3) ||
                strspn(p + 1, "0123456789") != 3)
                return false;
            commas = true;
            run = 0;
        } else if (*p == '.' && !seen_point) {
            digits[n++] = '.';
            seen_point = true;
        } else {
            return false;
        }
    }
    if (!seen_digit)
        return false;
    digits[n] = '\0';
    char *end;
    *value = strtold(digits, &end);
    return *end == '\0' && isfinite(*value);
}

bool math_numbers_equal(const char *a, const char *b)
{
    long double x, y;
    if (!parse_plain_number(a, &x) || !parse_plain_number(b, &y))
        return false;
    long double scale = fabsl(x) > 1 ? fabsl(x) : 1;
    return fabsl(x - y) <= 1e-9L * scale;
}
