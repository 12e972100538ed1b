/* nn_cuda.h: the CUDA backend of the nn library: its creation function and
 * two device queries, nothing else. Everything the backend does is reached
 * through backend.h (nn_backend_*), exactly as for the CPU backend. Tensors
 * of this backend carry NN_DEVICE_CUDA and are created with
 * nn_backend_alloc(); nn_tensor_copy() moves data to and from the host.
 *
 * GEMMs run in FP32 (FP64 in the nn_cuda_f64 build). Setting the environment
 * variable NN_CUDA_TF32=1 before nn_cuda_backend_create() lets cuBLAS use
 * TF32 tensor cores for the float GEMMs (about 10 bits of mantissa in the
 * products; faster, and no longer within the tests' float tolerances). */
#ifndef NN_CUDA_H
#define NN_CUDA_H

#include <stddef.h>
#include "nn/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Creates a backend on CUDA device `device` (0-based) with its own stream,
 * cuBLAS handle and workspace (NN_CUDA_WORKSPACE_MB, default 128 MiB).
 * Returns NN_OK and *out (release with nn_backend_free), NN_ERR_ARG for a
 * NULL out or a device that does not exist, NN_ERR_CUDA when the runtime
 * reports an error (no driver, no device: the message says which), or
 * NN_ERR_NOMEM. err: NN_ERRLEN bytes or NULL. The backend may be used from
 * one thread at a time, not necessarily the creating one. */
nn_status nn_cuda_backend_create(int device, nn_backend **out, char *err);

/* The number of CUDA devices the runtime sees; 0 when there is no driver or
 * no device (never negative). */
int nn_cuda_device_count(void);

/* One line about device `device`, e.g. "NVIDIA H200, sm_90, 132 SMs,
 * 139.8 GiB", into buf (len bytes, truncated, always terminated when
 * len > 0). NN_ERR_ARG on a bad buffer or device, NN_ERR_CUDA when the
 * runtime fails (buf then holds the reason). */
nn_status nn_cuda_device_info(int device, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
