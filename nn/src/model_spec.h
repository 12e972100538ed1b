/* model_spec.h: the parsed form of a model's JSON (private to nn). */
#ifndef NN_MODEL_SPEC_H
#define NN_MODEL_SPEC_H

#include "nn/model.h"

#define NN_MAX_LAYERS 64

typedef enum layer_kind {
    LAYER_CONV, LAYER_RELU, LAYER_MAXPOOL, LAYER_LINEAR, LAYER_BATCHNORM, LAYER_DROPOUT
} layer_kind;

typedef struct layer_spec {
    layer_kind kind;
    int filters, size, stride, pad; /* conv; maxpool uses size, stride */
    int bias;                       /* conv: has a bias (batch norm after it makes one useless) */
    int units;                      /* linear */
    double eps, momentum;           /* batchnorm */
    double p;                       /* dropout */
    int in[3], out[3];              /* (C,H,W) of one image, filled by parse */
} layer_spec;

typedef struct model_spec {
    layer_spec layers[NN_MAX_LAYERS];
    int num_layers;
    int kaiming;          /* else gaussian with weight_scale */
    double weight_scale;
    double reg;
    char preset[32];      /* the preset it came from, for display */
} model_spec;

/* Parses and validates json for cfg's input; errors name the JSON path. */
nn_status nn_model_spec_parse(model_spec *s, const char *json,
                              const nn_model_config *cfg, char *err);
/* The canonical JSON (malloc'd by cJSON; free with free()), or NULL on OOM. */
char *nn_model_spec_json(const model_spec *s);
const char *nn_layer_kind_name(layer_kind k);

#endif
