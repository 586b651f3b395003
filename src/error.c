/* SPDX-License-Identifier: MIT */
/* Error code names and texts, and the assertion reporter. */
#include "internal.h"
#include "plat.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <weft/thread.h>

struct errinfo {
    int code;
    const char *name;
    const char *text;
};

static const struct errinfo errtab[] = {
    {WEFT_OK, "WEFT_OK", "success"},
    {WEFT_EINVAL, "WEFT_EINVAL", "invalid argument"},
    {WEFT_ENOMEM, "WEFT_ENOMEM", "out of memory"},
    {WEFT_EAGAIN, "WEFT_EAGAIN", "would block, try again"},
    {WEFT_ETIMEDOUT, "WEFT_ETIMEDOUT", "timed out"},
    {WEFT_ECLOSED, "WEFT_ECLOSED", "closed"},
    {WEFT_ECANCELED, "WEFT_ECANCELED", "cancelled"},
    {WEFT_EPERM, "WEFT_EPERM", "not the owner"},
    {WEFT_EBUSY, "WEFT_EBUSY", "busy"},
    {WEFT_EBROKEN, "WEFT_EBROKEN", "barrier broken"},
    {WEFT_ERANGE, "WEFT_ERANGE", "value out of range"},
    {WEFT_ENOSYS, "WEFT_ENOSYS", "not supported"},
    {WEFT_EIO, "WEFT_EIO", "input/output error"},
    {WEFT_ENOENT, "WEFT_ENOENT", "no such entry"},
    {WEFT_EDEADLK, "WEFT_EDEADLK", "would deadlock"},
    {WEFT_ESHUTDOWN, "WEFT_ESHUTDOWN", "shut down"},
    {WEFT_EOVERFLOW, "WEFT_EOVERFLOW", "overflow"},
    {WEFT_ESYS, "WEFT_ESYS", "operating system error"},
};

static const struct errinfo *
find(int code)
{
    for (size_t i = 0; i < sizeof(errtab) / sizeof(errtab[0]); i++) {
        if (errtab[i].code == code) {
            return &errtab[i];
        }
    }
    return NULL;
}

const char *
weft_strerror(int code)
{
    const struct errinfo *e = find(code);
    return e != NULL ? e->text : "unknown error";
}

const char *
weft_errname(int code)
{
    const struct errinfo *e = find(code);
    return e != NULL ? e->name : "WEFT_E?";
}

void
weft__assert_fail(const char *file, int line, const char *func, const char *fmt,
                  ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char buf[1024];
    int n = snprintf(buf, sizeof(buf),
                     "weft: assertion failed in %s() at %s:%d "
                     "[thread %s]: %s\n",
                     func, file, line, weft_thread_name(), msg);
    if (n > 0) {
        size_t len = (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1;
        weft__plat_write_stderr(buf, len);
    }
    abort();
}
