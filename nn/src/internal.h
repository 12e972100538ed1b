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

#endif
