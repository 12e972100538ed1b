/* fuzz_idx.c: IDX data files (plain or gzip). The input is split in two at
 * its first byte's share: images file, labels file; both go through the
 * real loader by path (memfd files), so gzip handling is fuzzed too. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
#include "nn/data.h"

static int memfile(const uint8_t *p, size_t n, char *path, size_t len)
{
    int fd = memfd_create("fuzz", 0);
    if (fd < 0)
        return -1;
    if (n && write(fd, p, n) != (ssize_t)n) {
        close(fd);
        return -1;
    }
    snprintf(path, len, "/proc/self/fd/%d", fd);
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 20)
        return 0;
    size_t cut = 1 + (size_t)data[0] * (size - 1) / 255;
    char pi[64], pl[64];
    int fi = memfile(data + 1, cut - 1, pi, sizeof pi);
    int fl = memfile(data + cut, size - cut, pl, sizeof pl);
    if (fi >= 0 && fl >= 0) {
        nn_dataset *d = NULL;
        char err[NN_ERRLEN];
        if (nn_dataset_load_idx(&d, pi, pl, err) == NN_OK)
            nn_dataset_free(d);
    }
    if (fi >= 0)
        close(fi);
    if (fl >= 0)
        close(fl);
    return 0;
}
