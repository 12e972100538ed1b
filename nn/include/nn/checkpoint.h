/* checkpoint.h: a versioned, checksummed container of one JSON metadata
 * document and a list of named tensors, written atomically.
 *
 * It deliberately knows nothing of models, optimizers or solvers: callers
 * decide what the metadata says and how tensors are named ("param/conv0.weight",
 * "optim/adam.m", ...). The byte layout is specified in docs/checkpoint.md. */
#ifndef NN_CHECKPOINT_H
#define NN_CHECKPOINT_H

#include <stddef.h>
#include "nn/status.h"
#include "nn/tensor.h"

/* The on-disk element type. The values are the format's dtype codes. */
typedef enum nn_dtype { NN_F32 = 1, NN_F64 = 2 } nn_dtype;

#define NN_CKPT_NAME_MAX 96                 /* sizeof name, NUL included */
#define NN_CKPT_MAX_TENSORS 4096
#define NN_CKPT_MAX_META ((size_t)16 << 20) /* 16 MiB of metadata */
#define NN_CKPT_MAX_DATA ((unsigned long long)8 << 30) /* 8 GiB of tensor data */

typedef struct nn_ckpt_tensor {
    char name[NN_CKPT_NAME_MAX]; /* NUL-terminated, non-empty, unique in a file */
    int ndim;                    /* 1..4 */
    int shape[NN_MAX_DIMS];      /* shape[0..ndim-1] >= 1, row-major */
    nn_dtype dtype;              /* on disk; nn_ckpt_write converts nn_real to it */
    nn_real *data;               /* write: borrowed host data of prod(shape) nn_real;
                                    read: owned, converted to nn_real */
} nn_ckpt_tensor;

/* Writes meta_json and tensors[0..n-1] to path, atomically: the bytes go to
 * "<path>.tmp.<pid>" in the same directory, which is fsynced, renamed over
 * path, and then the directory is fsynced. meta_json is any NUL-terminated
 * UTF-8 text (the library does not parse it). Each tensor's dtype chooses its
 * on-disk type; NN_F32 from a double build rounds. 0 <= n <= 4096 (tensors
 * may be NULL when n == 0).
 * Returns NN_OK; NN_ERR_ARG (checked before any file is touched: NULL
 * path/meta, bad n, empty/unterminated (>= 96 bytes)/duplicate name, ndim not
 * 1..4, dim < 1, NULL data, unknown dtype, metadata > 16 MiB, data > 8 GiB);
 * NN_ERR_IO (create/write/fsync/rename failed); NN_ERR_NOMEM. On any failure
 * before the rename the old file at path is untouched and the temp file
 * removed; if only the final fsync of the directory fails, the new file is
 * already in place and NN_ERR_IO reports that it may not be durable.
 * err: optional NN_ERRLEN buffer. Thread-safe for distinct paths; two
 * threads of one process writing the same path at once share a temp name. */
nn_status nn_ckpt_write(const char *path, const char *meta_json,
                        const nn_ckpt_tensor *tensors, int n, char *err);

/* Reads path and verifies everything (magic, version, flags, sizes, bounds,
 * layout, end marker, CRC-32) before returning anything. On success
 * *meta_json (malloc'd, NUL-terminated), *tensors (malloc'd array of *n,
 * NULL when *n == 0, each data malloc'd and converted to nn_real) belong to
 * the caller: release with nn_ckpt_free(*meta_json, *tensors, *n).
 * Returns NN_OK; NN_ERR_ARG (NULL output pointer or path); NN_ERR_IO (missing
 * or unreadable file, not a regular file); NN_ERR_FORMAT (not a checkpoint,
 * truncated, altered, unsupported version, over the limits in this header),
 * with a message naming path and what is wrong, e.g. "m.ckpt: truncated in
 * tensor 3 'param/fc.weight'"; NN_ERR_NOMEM. On failure the outputs are
 * NULL/0. Claimed sizes are checked against the file size before any
 * allocation, so a hostile header cannot cause an absurd one. Thread-safe. */
nn_status nn_ckpt_read(const char *path, char **meta_json,
                       nn_ckpt_tensor **tensors, int *n, char *err);

/* The same reader over len bytes at buf (uploads, the fuzzer). buf is
 * borrowed and never read outside [buf, buf+len). `what` names the buffer in
 * messages (NULL: "checkpoint"). Same results and ownership as nn_ckpt_read;
 * buf may be NULL only when len == 0 (then NN_ERR_FORMAT). */
nn_status nn_ckpt_read_mem(const void *buf, size_t len, const char *what,
                           char **meta_json, nn_ckpt_tensor **tensors, int *n,
                           char *err);

/* Frees what nn_ckpt_read returned. Any argument may be NULL. */
void nn_ckpt_free(char *meta_json, nn_ckpt_tensor *tensors, int n);

/* The tensor called name in tensors[0..n-1], or NULL (also for NULL
 * arguments). Linear search. */
const nn_ckpt_tensor *nn_ckpt_find(const nn_ckpt_tensor *tensors, int n,
                                   const char *name);

#endif
