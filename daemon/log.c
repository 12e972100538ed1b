/* log.c: one-line log records on stderr (see log.h). */
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Written once by log_init() before threads exist, read-only afterwards. */
static int journal_prefix;

void log_init(void)
{
    /* JOURNAL_STREAM is inherited by children whose stderr may be
     * redirected elsewhere, so only trust it when it names our stderr. */
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    journal_prefix = 0;
    if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
        return;
    if (fstat(STDERR_FILENO, &st) != 0)
        return;
    journal_prefix = (unsigned long long)st.st_dev == dev &&
                     (unsigned long long)st.st_ino == ino;
}

void log_vmsg(log_level lvl, const char *fmt, va_list ap)
{
    char line[1024];
    size_t len = 0;
    int n;

    if (journal_prefix) {
        n = snprintf(line, sizeof line, "<%d>", (int)lvl);
        len = n > 0 ? (size_t)n : 0;
    }
    n = snprintf(line + len, sizeof line - len, "convnetd: ");
    len += n > 0 ? (size_t)n : 0;
    n = vsnprintf(line + len, sizeof line - len, fmt, ap);
    if (n > 0)
        len += (size_t)n;
    if (len > sizeof line - 2)
        len = sizeof line - 2;  /* truncated: keep room for the newline */
    /* libmicrohttpd's messages come with their own newline. */
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == ' '))
        len--;
    /* Untrusted text (a path, a client's string) must not forge a second
     * record, so embedded newlines become spaces. */
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    /* One write(2) per record: stdio buffering could split it. A failed or
     * short write to stderr has nowhere better to be reported. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void log_msg(log_level lvl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(lvl, fmt, ap);
    va_end(ap);
}
