/* log.h: the daemon's log, one line per event on stderr.
 *
 * Lines read "convnetd: <text>". When stderr is the journal (systemd sets
 * JOURNAL_STREAM to its device:inode) each line also carries a "<N>" syslog
 * priority prefix, which journald strips and turns into the entry's priority.
 * This is not a logging framework: no levels to filter, no files, no rotation. */
#ifndef CONVNETD_LOG_H
#define CONVNETD_LOG_H

#include <stdarg.h>

typedef enum log_level {
    LOG_LVL_ERR = 3,   /* the numbers are syslog priorities */
    LOG_LVL_WARN = 4,
    LOG_LVL_INFO = 6
} log_level;

/* Decides once whether stderr is the journal. Call before any thread starts;
 * without it, lines carry no priority prefix. */
void log_init(void);

/* Writes one line (fmt is printf-style, no trailing newline needed) with a
 * single write, so lines from several threads never interleave. Lines longer
 * than 1 KiB are truncated. Thread-safe; never fails visibly. */
void log_msg(log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_vmsg(log_level lvl, const char *fmt, va_list ap);

#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_err(...)  log_msg(LOG_LVL_ERR, __VA_ARGS__)

#endif
