/* model.h: a convnet as a list of layers described in JSON, with its
 * parameters, gradients, optimizer state and activations each in one arena
 * on one backend's device.
 *
 * The model JSON (the same document the daemon accepts and a checkpoint
 * stores) is either a preset or an explicit layer list:
 *   {"preset":"three_layer_convnet", "num_filters":32, "filter_size":7,
 *    "hidden_dim":100, "weight_scale":1e-3, "reg":0}
 *   {"preset":"deep_convnet", "num_filters":[8,8,8], "max_pools":[0,1,2],
 *    "batchnorm":false, "weight_initializer":"kaiming", "reg":0}
 *   {"layers":[{"type":"conv","filters":32,"size":7,"stride":1,"pad":3},
 *              {"type":"relu"}, {"type":"maxpool","size":2,"stride":2},
 *              {"type":"linear","units":100}, {"type":"batchnorm"},
 *              {"type":"dropout","p":0.5}, {"type":"linear"}],
 *    "weight_initializer":"gaussian", "weight_scale":1e-3, "reg":0}
 * A final linear layer without "units" gets one per class. Presets expand
 * into layer lists; nn_model_json() returns that canonical expanded form.
 * Spec errors start with the JSON path of the offending field and ": ",
 * e.g. "model.layers[2].filters: must be >= 1, got 0". */
#ifndef NN_MODEL_H
#define NN_MODEL_H

#include <stdint.h>
#include "nn/backend.h"

typedef struct nn_model nn_model;

typedef struct nn_model_config {
    int channels, height, width; /* one input image */
    int num_classes;
    int max_batch;               /* activations are sized for this many images */
    uint64_t seed;               /* weight initialisation */
} nn_model_config;

/* Parses and checks spec_json against cfg without allocating the model;
 * *bytes (may be NULL) receives the device memory the model with an
 * optimizer of `optim_slots` state arrays would take. */
nn_status nn_model_estimate(size_t *bytes, const char *spec_json,
                            const nn_model_config *cfg, int optim_slots,
                            char *err);

/* Builds the model on backend b (borrowed; must outlive the model) and
 * initialises its weights from cfg->seed. */
nn_status nn_model_create(nn_model **out, nn_backend *b, const char *spec_json,
                          const nn_model_config *cfg, char *err);
void nn_model_free(nn_model *m);

/* The canonical JSON of the model (layers expanded). Owned by m. */
const char *nn_model_json(const nn_model *m);
const nn_model_config *nn_model_cfg(const nn_model *m);
nn_backend *nn_model_backend(const nn_model *m);
double nn_model_reg(const nn_model *m);
/* Bytes of device memory held by the model (arenas and workspace). */
size_t nn_model_bytes(const nn_model *m);

/* ---- parameters ---------------------------------------------------------
 * Trainable parameters live back to back in one arena, gradients in a
 * second of the same layout. Buffers (batch norm running statistics) are
 * checkpointed but not trained. */
size_t nn_model_num_params(const nn_model *m);
nn_tensor *nn_model_params(nn_model *m);   /* 1-d view of the whole arena */
nn_tensor *nn_model_grads(nn_model *m);
nn_tensor *nn_model_buffers(nn_model *m);  /* 1-d; size 0 when none */

/* Named tensors, in a fixed order: i < nn_model_num_tensors(). kind: 0 a
 * trainable weight (L2-regularised), 1 a trainable parameter that is not
 * regularised (bias, gamma, beta), 2 a buffer. grad is NULL for buffers. */
int nn_model_num_tensors(const nn_model *m);
nn_status nn_model_tensor(nn_model *m, int i, const char **name, int *kind,
                          nn_tensor **param, nn_tensor **grad);

/* The first conv layer's weight (K,C,R,S) on the device, or NULL. */
nn_tensor *nn_model_first_conv_weight(nn_model *m);

/* ---- running ------------------------------------------------------------ */

/* Forward pass over x (N,C,H,W) on the device, N <= max_batch. training
 * selects batch statistics and dropout (with dropout_seed). *scores is a
 * view (N,num_classes) on the device into the model's memory, valid until
 * the next call. */
nn_status nn_model_forward(nn_model *m, nn_tensor **scores, const nn_tensor *x,
                           int training, uint64_t dropout_seed, char *err);

/* One training evaluation: zeroes the gradients, runs forward (training),
 * the softmax loss against labels (N), backward, and L2 regularisation.
 * *loss = data loss + reg * sum of squared weights. Gradients are left in
 * nn_model_grads(). */
nn_status nn_model_loss(nn_model *m, double *loss, const nn_tensor *x,
                        const nn_tensor *labels, uint64_t dropout_seed,
                        char *err);

/* Host copies of class scores for a batch on the host: x (N,C,H,W) host,
 * scores (N,num_classes) host. Moves data to the device and back. */
nn_status nn_model_predict(nn_model *m, nn_tensor *scores, const nn_tensor *x,
                           char *err);

#endif
