/* fuzz_jobspec.c: jobspec_parse(), the validation of a POST /v1/jobs body,
 * in both modes, against a minimal context built once: a synthetic IDX
 * data set "synth" (64 images, 28x28, 10 classes; tests/daemon's
 * tj_write_synth) in a temporary data directory found by datasets_scan(),
 * and one device, the CPU, as an app with no store, jobs or serve. The
 * input is the request body as JSON text; everything jobspec_parse touches
 * (model and solver JSON in nn, the data set's header, the split, the
 * memory estimate) runs as it does in the daemon, without loading pixels.
 * FUZZ_VERBOSE=1 in the environment prints each validation error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "app.h"
#include "daemon_proc.h"
#include "datasets.h"
#include "jobspec.h"

static app the_app;
static char dir[] = "/tmp/fuzz-jobspec-XXXXXX";

static void cleanup(void)
{
    datasets_free(the_app.datasets);
    dp_rmrf(dir);
}

static int setup(void)
{
    datasets *ds = NULL;
    if (dp_mkdtemp(dir) != 0 || tj_write_synth(dir, "synth", 64, 28, 28, 10, 7) != 0)
        return -1;
    datasets_scan(&ds, dir);
    the_app.datasets = ds;
    the_app.ndevices = 1;
    snprintf(the_app.devices[0].name, sizeof the_app.devices[0].name, "cpu");
    the_app.devices[0].cuda = -1;
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    jobspec s;
    jobspec_error e;

    if (!ready) {
        if (setup() != 0)
            abort();
        ready = 1;
    }
    if (size > 1 << 16)
        return 0;
    cJSON *doc = cJSON_ParseWithLength((const char *)data, size);
    if (doc == NULL)
        return 0;
    for (int mode = JOBSPEC_PARSE; mode <= JOBSPEC_ADMIT; mode++) {
        if (jobspec_parse(&s, doc, &the_app, (jobspec_mode)mode, &e) == 0) {
            if (s.model_json == NULL || s.n_train < 1 || s.n_val < 0)
                abort();
            jobspec_clear(&s);
        } else if (getenv("FUZZ_VERBOSE") != NULL) {
            fprintf(stderr, "jobspec (mode %d): %s: %s\n", mode, e.field, e.message);
        }
        if (memchr(e.message, 0, sizeof e.message) == NULL ||
            memchr(e.field, 0, sizeof e.field) == NULL)
            abort();
    }
    cJSON_Delete(doc);
    return 0;
}
