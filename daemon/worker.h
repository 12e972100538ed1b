/* worker.h: the thread that owns one compute device and runs training jobs
 * on it, one at a time, from the job manager's queue for that device.
 *
 * The worker creates the device's backend on its own thread and is the only
 * thread that ever touches it. It opens its own store connection, writes
 * the state of the job it runs, buffers metrics and writes them in batches,
 * checkpoints at every epoch end, on pause and on shutdown, and resumes a
 * job from its checkpoint when it has one. Between two minibatches it
 * checks the job's requests (cancel, pause, stop) and answers the inference
 * requests and evaluations queued for its device (serve.h), which it also
 * does whenever it has no job. It keeps the first conv layer's filters of
 * every epoch end beside the checkpoint (models.h). */
#ifndef CONVNETD_WORKER_H
#define CONVNETD_WORKER_H

#include <stddef.h>

#include "app.h"

typedef struct worker worker;

/* Starts the worker of a->devices[index]; a->jobs, a->datasets and
 * a->db_path must be set. Returns 0 and *out, or -1 with a message in err
 * (the thread could not be created). A device that then fails to
 * initialise is logged, and its jobs fail with that message. */
int worker_start(worker **out, app *a, int index, char *err, size_t errlen);

/* Waits for the worker to finish (call jobs_shutdown first: a running job
 * then checkpoints and stays marked running) and frees it. NULL is a no-op. */
void worker_join(worker *w);

#endif
