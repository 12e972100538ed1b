/* internal.h: helpers shared by nn's source files; not part of the API. */
#ifndef NN_INTERNAL_H
#define NN_INTERNAL_H

#include <stdarg.h>
#include "nn/status.h"
#include "nn/tensor.h"

#if defined(__GNUC__)
#define NN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define NN_PRINTF(a, b)
#endif

/* Writes the formatted message into err (NN_ERRLEN bytes; NULL: nothing)
 * and returns s, so a failure path is one line: return nn_fail(err, ...). */
nn_status nn_fail(char *err, nn_status s, const char *fmt, ...) NN_PRINTF(3, 4);

/* Returns the status of an expression early when it is not NN_OK. */
#define NN_TRY(expr) do { nn_status _s = (expr); if (_s != NN_OK) return _s; } while (0)

/* Hot loops get a clone per x86-64 level, picked at load time (ifunc), so
 * one portable binary runs AVX-512 code where the CPU has it. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(NN_NO_CLONES)
#define NN_SIMD __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define NN_SIMD
#endif

#ifdef NN_DOUBLE
#define nn_sqrt sqrt
#else
#define nn_sqrt sqrtf
#endif

/* nn_softmax_loss with labels as a tensor of nn_real-coded class indices
 * (the backend op's form). */
nn_status nn_softmax_loss_real(double *loss, nn_tensor *dscores,
                               const nn_tensor *scores, const nn_tensor *labels,
                               char *err);

/* ---- range kernels for the threaded CPU backend --------------------------
 * The parts of the public kernels that split across threads, working on
 * [i0, i1) of arguments the public kernel has already validated. */
#include <stdint.h>
#include "nn/layers.h"
#include "nn/optim.h"
/* One update-rule step for elements [i0, i1) of n; state holds the rule's
 * slots back to back, each n long. */
void nn_optim_range(nn_real *w, const nn_real *g, nn_real *state, size_t n,
                    size_t i0, size_t i1, const nn_optim_params *p, long t);
/* Checks what nn_optim_step checks. */
nn_status nn_optim_check(const nn_tensor *param, const nn_tensor *state,
                         const nn_tensor *grad, const nn_optim_params *p, long t,
                         char *err);
/* The sum of x[0..n), in vector-wide partial sums (batchnorm.c). */
nn_real nn_sum(const nn_real *x, size_t n);
/* grad += 2 reg w over [i0, i1); returns the sum of w^2 there. */
double nn_l2_range(nn_real *g, const nn_real *w, size_t i0, size_t i1, double reg);
/* Dropout over elements [i0, i1) (the mask index is the global i). */
void nn_dropout_range(nn_real *out, nn_real *mask, const nn_real *inp, size_t i0,
                      size_t i1, double p, uint64_t seed);
/* Linear layer parts on column ranges of validated (N,D) x (D,M):
 * out[:, j0:j1) = inp @ weight[:, j0:j1) + bias[j0:j1);
 * dweight[:, j0:j1) += inp^T dout[:, j0:j1), dbias likewise;
 * dinp[:, d0:d1) += dout @ weight[d0:d1, :]^T. */
void nn_linear_fwd_cols(nn_real *out, const nn_real *inp, const nn_real *weight,
                        const nn_real *bias, int N, int D, int M, int j0, int j1);
void nn_linear_dw_cols(nn_real *dweight, nn_real *dbias, const nn_real *dout,
                       const nn_real *inp, int N, int D, int M, int j0, int j1);
void nn_linear_dx_cols(nn_real *dinp, const nn_real *dout, const nn_real *weight,
                       int N, int D, int M, int d0, int d1);
/* Batch norm over channels [c0, c1) of arguments its check accepted. */
nn_status nn_batchnorm_check_fwd(int *N, int *C, size_t *L, const nn_tensor *out,
                                 const nn_tensor *save_mean, const nn_tensor *save_invstd,
                                 const nn_tensor *running_mean,
                                 const nn_tensor *running_var, const nn_tensor *inp,
                                 const nn_tensor *gamma, const nn_tensor *beta,
                                 const nn_batchnorm_params *p, char *err);
void nn_batchnorm_fwd_range(nn_tensor *out, nn_tensor *save_mean,
                            nn_tensor *save_invstd, nn_tensor *running_mean,
                            nn_tensor *running_var, const nn_tensor *inp,
                            const nn_tensor *gamma, const nn_tensor *beta,
                            const nn_batchnorm_params *p, int N, int C, size_t L,
                            int c0, int c1);
nn_status nn_batchnorm_check_bwd(int *N, int *C, size_t *L, const nn_tensor *dinp,
                                 const nn_tensor *dgamma, const nn_tensor *dbeta,
                                 const nn_tensor *dout, const nn_tensor *inp,
                                 const nn_tensor *gamma, const nn_tensor *save_mean,
                                 const nn_tensor *save_invstd, char *err);
void nn_batchnorm_bwd_range(nn_tensor *dinp, nn_tensor *dgamma, nn_tensor *dbeta,
                            const nn_tensor *dout, const nn_tensor *inp,
                            const nn_tensor *gamma, const nn_tensor *save_mean,
                            const nn_tensor *save_invstd, int N, int C, size_t L,
                            int c0, int c1);
/* The linear kernels' validation; fills N, D, M. */
nn_status nn_linear_check_fwd(int *N, int *D, int *M, const nn_tensor *out,
                              const nn_tensor *inp, const nn_tensor *weight,
                              const nn_tensor *bias, char *err);
nn_status nn_linear_check_bwd(int *N, int *D, int *M, const nn_tensor *dinp,
                              const nn_tensor *dweight, const nn_tensor *dbias,
                              const nn_tensor *dout, const nn_tensor *inp,
                              const nn_tensor *weight, char *err);

#endif
