/* status.h: the one status type of the nn library, and how error text travels.
 *
 * Every library function that can fail returns an nn_status. Detail text goes
 * to an optional caller-owned buffer of NN_ERRLEN bytes (anet's `char *err`);
 * passing NULL means "the code is enough". The library never prints or exits. */
#ifndef NN_STATUS_H
#define NN_STATUS_H

#define NN_ERRLEN 256

typedef enum nn_status {
    NN_OK = 0,
    NN_ERR_NOMEM,       /* an allocation failed */
    NN_ERR_ARG,         /* a bad argument: NULL, out of range, wrong device */
    NN_ERR_SHAPE,       /* tensor shapes that do not fit together */
    NN_ERR_IO,          /* a file could not be read or written */
    NN_ERR_FORMAT,      /* a file or document is corrupt or of the wrong kind */
    NN_ERR_CUDA,        /* the CUDA runtime or cuBLAS reported an error */
    NN_ERR_UNSUPPORTED  /* the backend or build lacks this operation */
} nn_status;

/* A short constant English name for s ("out of memory", ...). Never NULL. */
const char *nn_status_str(nn_status s);

#endif
