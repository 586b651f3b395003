/* SPDX-License-Identifier: MIT */
/* errno to WEFT_E* translation: the only place errno values are read. */
#include "plat.h"

#include <errno.h>
#include <unistd.h>

int
weft__plat_err(int errnum)
{
    switch (errnum) {
    case 0:
        return WEFT_OK;
    case EINVAL:
        return WEFT_EINVAL;
    case ENOMEM:
        return WEFT_ENOMEM;
    case EAGAIN:
        return WEFT_EAGAIN;
    case ETIMEDOUT:
        return WEFT_ETIMEDOUT;
    case ECANCELED:
        return WEFT_ECANCELED;
    case EPERM:
    case EACCES:
        return WEFT_EPERM;
    case EBUSY:
        return WEFT_EBUSY;
    case ERANGE:
        return WEFT_ERANGE;
    case ENOSYS:
    case EOPNOTSUPP:
        return WEFT_ENOSYS;
    case EIO:
        return WEFT_EIO;
    case ENOENT:
        return WEFT_ENOENT;
    case EDEADLK:
        return WEFT_EDEADLK;
    case EOVERFLOW:
        return WEFT_EOVERFLOW;
    case EPIPE:
        return WEFT_ECLOSED;
    default:
        return WEFT_ESYS;
    }
}

void
weft__plat_write_stderr(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(STDERR_FILENO, buf, len);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        buf += w;
        len -= (size_t)w;
    }
}
