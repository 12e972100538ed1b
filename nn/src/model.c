/* model.c: builds a model from its parsed spec on a backend and runs it.
 *
 * Memory: one arena each for parameters, gradients, buffers (batch norm
 * running statistics), activations, activation gradients and per-layer
 * scratch (batch norm saved statistics, dropout masks), plus one im2col
 * workspace sized for the largest conv layer. Tensors are views into them.
 * Forward, backward and the loss never allocate. Every operation goes
 * through the backend table, so the same code runs on the CPU and on CUDA. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn/model.h"
#include "nn/rng.h"
#include "model_spec.h"
#include "internal.h"

#define MAX_TENSORS (NN_MAX_LAYERS * 4)

typedef struct named {
    char name[32];
    int kind;                /* 0 weight, 1 other trainable, 2 buffer */
    int ndim, shape[4];
    size_t offset, size;     /* in its arena */
    int fan_in;              /* weights: for Kaiming */
    nn_real init;            /* non-weights: constant initial value */
    nn_tensor param, grad;   /* views; grad unset for buffers */
} named;

typedef struct layer {
    layer_spec s;
    size_t out_size;         /* elements per image */
    size_t act_off;          /* offset of this layer's output in the activation arenas */
    size_t aux_off;          /* offset in the scratch arena (bn stats, dropout mask) */
    int w, b;                /* named tensors: weight/gamma and bias/beta, -1 if none */
    int rmean, rvar;         /* batch norm buffers */
} layer;

struct nn_model {
    nn_backend *b;
    nn_model_config cfg;
    model_spec spec;
    char *json;
    layer layers[NN_MAX_LAYERS];
    named t[MAX_TENSORS];
    int nt;
    size_t nparams, nbuffers, nact, naux, nws;
    nn_tensor params, grads, buffers, act, dact, aux, ws;
    nn_tensor xin;           /* device copy of a host batch (predict); CPU: unused */
    nn_tensor scores;        /* the view handed out by forward */
};

/* ---- construction ------------------------------------------------------- */

static int add_tensor(nn_model *m, const char *layer_name, int index,
                      const char *what, int kind, int ndim, const int *shape,
                      int fan_in, nn_real init)
{
    named *t = &m->t[m->nt];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s%d.%s", layer_name, index, what);
    t->kind = kind;
    t->ndim = ndim;
    t->size = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->size *= (size_t)shape[i];
    }
    t->fan_in = fan_in;
    t->init = init;
    if (kind == 2) {
        t->offset = m->nbuffers;
        m->nbuffers += t->size;
    } else {
        t->offset = m->nparams;
        m->nparams += t->size;
    }
    return m->nt++;
}

/* Lays out every tensor and activation; allocates nothing. */
static void plan(nn_model *m)
{
    int count[6] = { 0 };
    m->nparams = m->nbuffers = m->nact = m->naux = m->nws = 0;
    m->nt = 0;
    for (int i = 0; i < m->spec.num_layers; i++) {
        layer *l = &m->layers[i];
        l->s = m->spec.layers[i];
        l->w = l->b = l->rmean = l->rvar = -1;
        l->out_size = (size_t)l->s.out[0] * l->s.out[1] * l->s.out[2];
        l->act_off = m->nact;
        m->nact += l->out_size * (size_t)m->cfg.max_batch;
        l->aux_off = m->naux;
        int k = ++count[l->s.kind];
        const int C = l->s.in[0];
        switch (l->s.kind) {
        case LAYER_CONV: {
            int fan = C * l->s.size * l->s.size;
            l->w = add_tensor(m, "conv", k, "weight", 0, 4,
                              (int[]){ l->s.filters, C, l->s.size, l->s.size }, fan, 0);
            if (l->s.bias)
                l->b = add_tensor(m, "conv", k, "bias", 1, 1, (int[]){ l->s.filters }, 0, 0);
            size_t ws = (size_t)fan * l->s.out[1] * l->s.out[2];
            if (ws > m->nws)
                m->nws = ws;
            break;
        }
        case LAYER_LINEAR: {
            int D = (int)((size_t)l->s.in[0] * l->s.in[1] * l->s.in[2]);
            l->w = add_tensor(m, "linear", k, "weight", 0, 2, (int[]){ D, l->s.units }, D, 0);
            l->b = add_tensor(m, "linear", k, "bias", 1, 1, (int[]){ l->s.units }, 0, 0);
            break;
        }
        case LAYER_BATCHNORM:
            l->w = add_tensor(m, "bn", k, "gamma", 1, 1, (int[]){ C }, 0, 1);
            l->b = add_tensor(m, "bn", k, "beta", 1, 1, (int[]){ C }, 0, 0);
            l->rmean = add_tensor(m, "bn", k, "running_mean", 2, 1, (int[]){ C }, 0, 0);
            l->rvar = add_tensor(m, "bn", k, "running_var", 2, 1, (int[]){ C }, 0, 1);
            m->naux += 2 * (size_t)C; /* save_mean, save_invstd */
            break;
        case LAYER_DROPOUT:
            m->naux += l->out_size * (size_t)m->cfg.max_batch; /* mask */
            break;
        case LAYER_RELU:
        case LAYER_MAXPOOL:
            break;
        }
    }
}

static size_t plan_bytes(const nn_model *m, int optim_slots)
{
    size_t n = m->nparams * (size_t)(2 + optim_slots + 1) /* params, grads, state, best */
             + m->nbuffers * 2 + m->nact * 2 + m->naux + m->nws
             + (size_t)m->cfg.max_batch * m->cfg.channels * m->cfg.height * m->cfg.width;
    return n * sizeof(nn_real);
}

nn_status nn_model_estimate(size_t *bytes, const char *spec_json,
                            const nn_model_config *cfg, int optim_slots, char *err)
{
    nn_model *m = calloc(1, sizeof *m);
    if (!m)
        return nn_fail(err, NN_ERR_NOMEM, "out of memory");
    nn_status st = nn_model_spec_parse(&m->spec, spec_json, cfg, err);
    if (st == NN_OK) {
        m->cfg = *cfg;
        plan(m);
        if (bytes)
            *bytes = plan_bytes(m, optim_slots);
    }
    free(m);
    return st;
}

static nn_tensor dev_view(const nn_model *m, nn_real *data, int ndim, const int *shape)
{
    nn_tensor t = ndim == 1 ? nn_tensor_1d(data, shape[0])
                : ndim == 2 ? nn_tensor_2d(data, shape[0], shape[1])
                            : nn_tensor_4d(data, shape[0], shape[1], shape[2], shape[3]);
    t.device = nn_backend_device(m->b);
    return t;
}

static nn_status alloc_arena(nn_model *m, nn_tensor *t, size_t n, char *err)
{
    if (n == 0) {
        memset(t, 0, sizeof *t);
        t->device = nn_backend_device(m->b);
        return NN_OK;
    }
    if (n > (size_t)INT32_MAX)
        return nn_fail(err, NN_ERR_NOMEM, "model needs %zu elements in one arena, more "
                       "than the %d supported", n, INT32_MAX);
    *t = nn_tensor_1d(NULL, (int)n);
    nn_status st = nn_backend_alloc(m->b, t);
    if (st)
        return nn_fail(err, st, "allocating %zu bytes on %s: %s", n * sizeof(nn_real),
                       nn_backend_name(m->b), nn_backend_errmsg(m->b));
    return NN_OK;
}

/* Gaussian or Kaiming weights, constants elsewhere; generated on the host
 * in tensor order from one seeded stream, then copied to the device. */
static nn_status initialise(nn_model *m, char *err)
{
    size_t n = m->nparams > m->nbuffers ? m->nparams : m->nbuffers;
    nn_real *host = malloc((n ? n : 1) * sizeof(nn_real));
    if (!host)
        return nn_fail(err, NN_ERR_NOMEM, "out of memory initialising weights");
    nn_rng rng;
    nn_rng_seed(&rng, m->cfg.seed);
    for (int pass = 0; pass < 2; pass++) { /* 0: params, 1: buffers */
        for (int i = 0; i < m->nt; i++) {
            const named *t = &m->t[i];
            if ((t->kind == 2) != pass)
                continue;
            nn_real *dst = host + t->offset;
            if (t->kind == 0) {
                double std = m->spec.kaiming ? sqrt(2.0 / t->fan_in) : m->spec.weight_scale;
                for (size_t j = 0; j < t->size; j++)
                    dst[j] = (nn_real)(std * nn_rng_normal(&rng));
            } else {
                for (size_t j = 0; j < t->size; j++)
                    dst[j] = t->init;
            }
        }
        nn_tensor *arena = pass ? &m->buffers : &m->params;
        if (arena->size == 0)
            continue;
        nn_tensor h = nn_tensor_1d(host, (int)arena->size);
        nn_status st = nn_tensor_copy(m->b, arena, &h);
        if (st) {
            free(host);
            return nn_fail(err, st, "uploading weights: %s", nn_backend_errmsg(m->b));
        }
    }
    free(host);
    return NN_OK;
}

nn_status nn_model_create(nn_model **out, nn_backend *b, const char *spec_json,
                          const nn_model_config *cfg, char *err)
{
    if (!out || !b)
        return nn_fail(err, NN_ERR_ARG, "model: out or backend is NULL");
    *out = NULL;
    nn_model *m = calloc(1, sizeof *m);
    if (!m)
        return nn_fail(err, NN_ERR_NOMEM, "out of memory");
    m->b = b;
    nn_status st = nn_model_spec_parse(&m->spec, spec_json, cfg, err);
    if (st)
        goto fail;
    m->cfg = *cfg;
    plan(m);
    if (!(m->json = nn_model_spec_json(&m->spec))) {
        st = nn_fail(err, NN_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((st = alloc_arena(m, &m->params, m->nparams, err)) ||
        (st = alloc_arena(m, &m->grads, m->nparams, err)) ||
        (st = alloc_arena(m, &m->buffers, m->nbuffers, err)) ||
        (st = alloc_arena(m, &m->act, m->nact, err)) ||
        (st = alloc_arena(m, &m->dact, m->nact, err)) ||
        (st = alloc_arena(m, &m->aux, m->naux, err)) ||
        (st = alloc_arena(m, &m->ws, m->nws, err)) ||
        (st = alloc_arena(m, &m->xin, nn_backend_device(b) == NN_DEVICE_CPU ? 0 :
                          (size_t)cfg->max_batch * cfg->channels * cfg->height * cfg->width,
                          err)))
        goto fail;
    for (int i = 0; i < m->nt; i++) {
        named *t = &m->t[i];
        nn_tensor *arena = t->kind == 2 ? &m->buffers : &m->params;
        t->param = dev_view(m, arena->data + t->offset, t->ndim, t->shape);
        if (t->kind != 2)
            t->grad = dev_view(m, m->grads.data + t->offset, t->ndim, t->shape);
    }
    if ((st = initialise(m, err)))
        goto fail;
    *out = m;
    return NN_OK;
fail:
    nn_model_free(m);
    return st;
}

void nn_model_free(nn_model *m)
{
    if (!m)
        return;
    nn_tensor *arenas[] = { &m->params, &m->grads, &m->buffers, &m->act, &m->dact,
                            &m->aux, &m->ws, &m->xin };
    for (size_t i = 0; i < sizeof arenas / sizeof arenas[0]; i++)
        nn_backend_release(m->b, arenas[i]);
    free(m->json);
    free(m);
}

/* ---- accessors ---------------------------------------------------------- */

const char *nn_model_json(const nn_model *m) { return m->json; }
const nn_model_config *nn_model_cfg(const nn_model *m) { return &m->cfg; }
nn_backend *nn_model_backend(const nn_model *m) { return m->b; }
double nn_model_reg(const nn_model *m) { return m->spec.reg; }
size_t nn_model_num_params(const nn_model *m) { return m->nparams; }
nn_tensor *nn_model_params(nn_model *m) { return &m->params; }
nn_tensor *nn_model_grads(nn_model *m) { return &m->grads; }
nn_tensor *nn_model_buffers(nn_model *m) { return &m->buffers; }
int nn_model_num_tensors(const nn_model *m) { return m->nt; }

size_t nn_model_bytes(const nn_model *m)
{
    return (m->nparams * 2 + m->nbuffers + m->nact * 2 + m->naux + m->nws + m->xin.size) *
           sizeof(nn_real);
}

nn_status nn_model_tensor(nn_model *m, int i, const char **name, int *kind,
                          nn_tensor **param, nn_tensor **grad)
{
    if (!m || i < 0 || i >= m->nt)
        return NN_ERR_ARG;
    named *t = &m->t[i];
    if (name) *name = t->name;
    if (kind) *kind = t->kind;
    if (param) *param = &t->param;
    if (grad) *grad = t->kind == 2 ? NULL : &t->grad;
    return NN_OK;
}

nn_tensor *nn_model_first_conv_weight(nn_model *m)
{
    for (int i = 0; i < m->spec.num_layers; i++)
        if (m->layers[i].s.kind == LAYER_CONV)
            return &m->t[m->layers[i].w].param;
    return NULL;
}

/* ---- running ------------------------------------------------------------ */

/* The view of one layer's activations (or their gradients) for N images:
 * (N,C,H,W), or (N,C) when H = W = 1 (linear outputs, 1-d batch norm). */
static nn_tensor act_view(const nn_model *m, const nn_tensor *arena, const int *chw,
                          size_t off, int N)
{
    if (chw[1] == 1 && chw[2] == 1)
        return dev_view(m, arena->data + off, 2, (int[]){ N, chw[0] });
    return dev_view(m, arena->data + off, 4, (int[]){ N, chw[0], chw[1], chw[2] });
}

static nn_status layer_forward(nn_model *m, layer *l, nn_tensor *out,
                               const nn_tensor *inp, int training, uint64_t seed, int N)
{
    nn_backend *b = m->b;
    switch (l->s.kind) {
    case LAYER_CONV: {
        nn_conv2d_params p = { .stride = l->s.stride, .pad = l->s.pad };
        return nn_backend_conv2d_forward(b, out, inp, &m->t[l->w].param,
                                         l->b >= 0 ? &m->t[l->b].param : NULL, &p, &m->ws);
    }
    case LAYER_RELU:
        return nn_backend_relu_forward(b, out, inp);
    case LAYER_MAXPOOL: {
        nn_pool_params p = { .pool_h = l->s.size, .pool_w = l->s.size, .stride = l->s.stride };
        return nn_backend_maxpool_forward(b, out, inp, &p);
    }
    case LAYER_LINEAR: {
        nn_tensor x2 = dev_view(m, inp->data, 2, (int[]){ N, (int)(inp->size / (size_t)N) });
        return nn_backend_linear_forward(b, out, &x2, &m->t[l->w].param, &m->t[l->b].param);
    }
    case LAYER_BATCHNORM: {
        const int C = l->s.in[0];
        nn_tensor sm = dev_view(m, m->aux.data + l->aux_off, 1, (int[]){ C });
        nn_tensor si = dev_view(m, m->aux.data + l->aux_off + C, 1, (int[]){ C });
        nn_batchnorm_params p = { .eps = l->s.eps, .momentum = l->s.momentum,
                                  .training = training };
        return nn_backend_batchnorm_forward(b, out, &sm, &si, &m->t[l->rmean].param,
                                            &m->t[l->rvar].param, inp, &m->t[l->w].param,
                                            &m->t[l->b].param, &p);
    }
    case LAYER_DROPOUT: {
        if (!training) /* inverted dropout: identity at test time */
            return nn_tensor_copy(b, out, inp);
        nn_tensor mask = dev_view(m, m->aux.data + l->aux_off, 1, (int[]){ (int)out->size });
        return nn_backend_dropout_forward(b, out, &mask, inp, l->s.p,
                                          seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(l - m->layers + 1)));
    }
    }
    return NN_ERR_ARG;
}

static nn_status layer_backward(nn_model *m, layer *l, nn_tensor *dinp,
                                const nn_tensor *dout, const nn_tensor *inp,
                                const nn_tensor *out, int N)
{
    nn_backend *b = m->b;
    switch (l->s.kind) {
    case LAYER_CONV: {
        nn_conv2d_params p = { .stride = l->s.stride, .pad = l->s.pad };
        return nn_backend_conv2d_backward(b, dinp, &m->t[l->w].grad,
                                          l->b >= 0 ? &m->t[l->b].grad : NULL, dout, inp,
                                          &m->t[l->w].param, &p, &m->ws);
    }
    case LAYER_RELU:
        return dinp ? nn_backend_relu_backward(b, dinp, dout, out) : NN_OK;
    case LAYER_MAXPOOL: {
        nn_pool_params p = { .pool_h = l->s.size, .pool_w = l->s.size, .stride = l->s.stride };
        return dinp ? nn_backend_maxpool_backward(b, dinp, dout, inp, &p) : NN_OK;
    }
    case LAYER_LINEAR: {
        const int D = (int)(inp->size / (size_t)N);
        nn_tensor x2 = dev_view(m, inp->data, 2, (int[]){ N, D });
        nn_tensor dx2;
        if (dinp)
            dx2 = dev_view(m, dinp->data, 2, (int[]){ N, D });
        return nn_backend_linear_backward(b, dinp ? &dx2 : NULL, &m->t[l->w].grad,
                                          &m->t[l->b].grad, dout, &x2, &m->t[l->w].param);
    }
    case LAYER_BATCHNORM: {
        const int C = l->s.in[0];
        nn_tensor sm = dev_view(m, m->aux.data + l->aux_off, 1, (int[]){ C });
        nn_tensor si = dev_view(m, m->aux.data + l->aux_off + C, 1, (int[]){ C });
        return nn_backend_batchnorm_backward(b, dinp, &m->t[l->w].grad, &m->t[l->b].grad,
                                             dout, inp, &m->t[l->w].param, &sm, &si);
    }
    case LAYER_DROPOUT: {
        if (!dinp)
            return NN_OK;
        nn_tensor mask = dev_view(m, m->aux.data + l->aux_off, 1, (int[]){ (int)dout->size });
        return nn_backend_dropout_backward(b, dinp, dout, &mask);
    }
    }
    return NN_ERR_ARG;
}

static nn_status check_input(const nn_model *m, const nn_tensor *x, char *err)
{
    if (!x || !x->data)
        return nn_fail(err, NN_ERR_ARG, "model input is NULL");
    if (x->device != nn_backend_device(m->b))
        return nn_fail(err, NN_ERR_ARG, "model input is not on the %s device",
                       nn_backend_name(m->b));
    const int want[4] = { 0, m->cfg.channels, m->cfg.height, m->cfg.width };
    if (x->ndim != 4 || x->shape[1] != want[1] || x->shape[2] != want[2] ||
        x->shape[3] != want[3])
        return nn_fail(err, NN_ERR_SHAPE, "model input must be (N,%d,%d,%d)", want[1],
                       want[2], want[3]);
    if (x->shape[0] < 1 || x->shape[0] > m->cfg.max_batch)
        return nn_fail(err, NN_ERR_SHAPE, "model batch of %d images; the model takes "
                       "1..%d", x->shape[0], m->cfg.max_batch);
    return NN_OK;
}

/* Runs a backend call; on failure copies the backend's message into err. */
#define BK(m, expr)                                                              \
    do {                                                                         \
        nn_status _s = (expr);                                                   \
        if (_s != NN_OK)                                                         \
            return nn_fail(err, _s, "%s", nn_backend_errmsg((m)->b));            \
    } while (0)

static nn_status forward(nn_model *m, const nn_tensor *x, int training,
                         uint64_t seed, char *err)
{
    const int N = x->shape[0];
    const nn_tensor *inp = x;
    nn_tensor views[2];
    for (int i = 0; i < m->spec.num_layers; i++) {
        layer *l = &m->layers[i];
        nn_tensor *out = &views[i & 1];
        *out = act_view(m, &m->act, l->s.out, l->act_off, N);
        BK(m, layer_forward(m, l, out, inp, training, seed, N));
        inp = out;
    }
    m->scores = *inp;
    return NN_OK;
}

nn_status nn_model_forward(nn_model *m, nn_tensor **scores, const nn_tensor *x,
                           int training, uint64_t dropout_seed, char *err)
{
    if (!m || !scores)
        return nn_fail(err, NN_ERR_ARG, "model or scores is NULL");
    NN_TRY(check_input(m, x, err));
    NN_TRY(forward(m, x, training, dropout_seed, err));
    *scores = &m->scores;
    return NN_OK;
}

/* The loss, then the backward pass and L2, from the scores forward left.
 * A device delivers *data_loss and ss[] at the next synchronize. */
static nn_status backward(nn_model *m, double *data_loss, double *ss, const nn_tensor *x,
                          const nn_tensor *labels, char *err)
{
    const int N = x->shape[0], L = m->spec.num_layers;
    layer *last = &m->layers[L - 1];
    nn_tensor dscores = act_view(m, &m->dact, last->s.out, last->act_off, N);
    BK(m, nn_backend_softmax_loss(m->b, data_loss, &dscores, &m->scores, labels));
    for (int i = L - 1; i >= 0; i--) {
        layer *l = &m->layers[i];
        nn_tensor out = act_view(m, &m->act, l->s.out, l->act_off, N);
        nn_tensor dout = act_view(m, &m->dact, l->s.out, l->act_off, N);
        nn_tensor inp, dinp;
        if (i > 0) {
            const layer *prev = &m->layers[i - 1];
            inp = act_view(m, &m->act, prev->s.out, prev->act_off, N);
            dinp = act_view(m, &m->dact, prev->s.out, prev->act_off, N);
        } else {
            inp = *x;
        }
        /* The first layer's input gradient is of no use: skip it (for a
         * conv layer that saves the whole col2im pass). */
        BK(m, layer_backward(m, l, i > 0 ? &dinp : NULL, &dout, &inp, &out, N));
    }
    for (int i = 0; m->spec.reg > 0 && i < m->nt; i++)
        if (m->t[i].kind == 0)
            BK(m, nn_backend_l2_reg(m->b, &ss[i], &m->t[i].grad, &m->t[i].param,
                                    m->spec.reg));
    return NN_OK;
}

nn_status nn_model_loss(nn_model *m, double *loss, const nn_tensor *x,
                        const nn_tensor *labels, uint64_t dropout_seed, char *err)
{
    if (!m || !loss || !labels)
        return nn_fail(err, NN_ERR_ARG, "model, loss or labels is NULL");
    NN_TRY(check_input(m, x, err));
    BK(m, nn_backend_zero(m->b, &m->grads));
    /* Backward kernels accumulate into activation gradients too; only the
     * used part of the arena needs zeroing, but one call is simpler and
     * the arena is small next to the GEMMs. */
    BK(m, nn_backend_zero(m->b, &m->dact));
    NN_TRY(forward(m, x, 1, dropout_seed, err));
    double data_loss = 0, ss[MAX_TENSORS] = { 0 };
    nn_status st = backward(m, &data_loss, ss, x, labels, err);
    /* The step's one wait for a device: the loss and the sums land here.
     * Also after a failure, so that nothing queued for data_loss or ss
     * lands after this frame is gone. */
    nn_status sync = nn_backend_synchronize(m->b);
    if (st != NN_OK)
        return st;
    if (sync != NN_OK)
        return nn_fail(err, sync, "%s", nn_backend_errmsg(m->b));
    double reg_loss = 0;
    for (int i = 0; i < m->nt; i++)
        reg_loss += ss[i];
    *loss = data_loss + m->spec.reg * reg_loss;
    return NN_OK;
}

nn_status nn_model_predict(nn_model *m, nn_tensor *scores, const nn_tensor *x,
                           char *err)
{
    if (!m || !scores || !x)
        return nn_fail(err, NN_ERR_ARG, "model, scores or input is NULL");
    const int N = x->ndim == 4 ? x->shape[0] : 0;
    NN_TRY(nn_tensor_check(x, "predict input", 4, (int[]){ 0, m->cfg.channels,
                           m->cfg.height, m->cfg.width }, err));
    NN_TRY(nn_tensor_check(scores, "predict scores", 2, (int[]){ N, m->cfg.num_classes },
                           err));
    if (N > m->cfg.max_batch)
        return nn_fail(err, NN_ERR_SHAPE, "predict batch of %d images; the model takes "
                       "1..%d", N, m->cfg.max_batch);
    const nn_tensor *in = x;
    nn_tensor dx;
    if (nn_backend_device(m->b) != NN_DEVICE_CPU) { /* upload into the staging arena */
        dx = dev_view(m, m->xin.data, 4, x->shape);
        BK(m, nn_tensor_copy(m->b, &dx, x));
        in = &dx;
    }
    NN_TRY(forward(m, in, 0, 0, err));
    BK(m, nn_tensor_copy(m->b, scores, &m->scores));
    return NN_OK;
}
