/* status.c: status names and the error-message helper. */
#include <stdio.h>
#include "internal.h"

const char *nn_status_str(nn_status s)
{
    switch (s) {
    case NN_OK: return "ok";
    case NN_ERR_NOMEM: return "out of memory";
    case NN_ERR_ARG: return "invalid argument";
    case NN_ERR_SHAPE: return "shape mismatch";
    case NN_ERR_IO: return "I/O error";
    case NN_ERR_FORMAT: return "bad format";
    case NN_ERR_CUDA: return "CUDA error";
    case NN_ERR_UNSUPPORTED: return "unsupported";
    }
    return "unknown status";
}

nn_status nn_fail(char *err, nn_status s, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, NN_ERRLEN, fmt, ap);
        va_end(ap);
    }
    return s;
}
