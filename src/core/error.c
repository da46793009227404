/* kpo_error (error.h): setting and prefixing the one-line message library
 * code returns with KPO_ERR. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int error_set(kpo_error *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return KPO_ERR;
}

int error_prefix(kpo_error *err, const char *fmt, ...)
{
    if (!err)
        return KPO_ERR;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    size_t cap = sizeof err->message - 1;
    size_t plen = strlen(prefix), mlen = strlen(err->message);
    if (plen > cap)
        plen = cap;
    if (plen + mlen > cap)
        mlen = cap - plen;
    memmove(err->message + plen, err->message, mlen);
    memcpy(err->message, prefix, plen);
    err->message[plen + mlen] = '\0';
    return KPO_ERR;
}

void error_clear(kpo_error *err)
{
    if (err)
        err->message[0] = '\0';
}
