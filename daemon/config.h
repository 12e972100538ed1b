/* config.h: convnetd's settings, from defaults, a config file and the
 * command line, in that order of precedence (last wins).
 *
 * One table in config.c lists every setting with its type, default and
 * bounds (redis style); unknown keys and bad values are errors, never
 * warnings. This module parses and validates; it does not act on settings. */
#ifndef CONVNETD_CONFIG_H
#define CONVNETD_CONFIG_H

#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

#define CFG_PATH_MAX 1024

/* Every field has a valid value after cfg_defaults(); the setters keep it so. */
typedef struct cfg {
    char listen[128];               /* "HOST:PORT", validated by cfg_parse_listen */
    char state_dir[CFG_PATH_MAX];   /* SQLite store, checkpoints; created at start-up */
    char data_dir[CFG_PATH_MAX];    /* where datasets are looked up */
    char device[32];                /* "auto", "cpu" or "cuda:N" */
    long threads;                   /* CPU compute threads; 0 = one per online CPU */
    char token_file[CFG_PATH_MAX];  /* bearer token file; "" = none */
    char migrations_dir[CFG_PATH_MAX]; /* SQL migrations; "" = built-in search */
    char web_dir[CFG_PATH_MAX];     /* the dashboard's files; "" = built-in search */
    long max_queued;                /* jobs waiting for a device, at most */
    long metrics_flush;             /* loss rows buffered before one insert */
    long request_timeout;           /* seconds of client silence before a close */
    long max_connections;           /* open HTTP connections, at most */
    long max_connections_per_ip;    /* per client address; 0 = no limit */
    long max_body;                  /* request body bytes, caps every route's own limit */
    long max_image_pixels;          /* w*h of an uploaded image, at most */
    char config_file[CFG_PATH_MAX]; /* the --config argument, "" if none */
} cfg;

typedef enum cfg_result {
    CFG_RUN = 0,   /* settings are complete and valid: start the daemon */
    CFG_HELP,      /* --help was given: print cfg_usage() and exit 0 */
    CFG_VERSION,   /* --version was given: print the version and exit 0 */
    CFG_ERROR      /* err holds a one-line message: exit 2 */
} cfg_result;

/* Sets every field of c to its table default. Never fails. */
void cfg_defaults(cfg *c);

/* Sets the setting named key (e.g. "threads"; "state_dir" is accepted for
 * "state-dir") from its text form. Returns 0, or -1 with a message in err
 * (errlen bytes, may be NULL) for an unknown key, a value that does not parse,
 * is out of range or too long. On error c is unchanged. */
int cfg_set(cfg *c, const char *key, const char *value, char *err, size_t errlen);

/* Applies the `key = value` lines of the file at path to c. Blank lines and
 * lines whose first non-blank character is '#' are ignored; whitespace around
 * key and value is trimmed; values are taken literally (no quotes, no inline
 * comments, so paths may contain '#'). Lines over 1023 bytes are errors.
 * Returns 0, or -1 with "path:line: message" in err. Settings from lines
 * before an error stay applied; callers exit on error anyway. */
int cfg_load_file(cfg *c, const char *path, char *err, size_t errlen);

/* Fills c from the command line (argv[0] is skipped): defaults, then the
 * --config file if one is given, then the other options in order. Options
 * take "--key value" or "--key=value". Nothing is printed. argv is not
 * modified. */
cfg_result cfg_parse_args(cfg *c, int argc, char *const argv[], char *err, size_t errlen);

/* Prints the usage text, generated from the table, to out. */
void cfg_usage(FILE *out);

/* Parses "HOST:PORT" (HOST: dotted IPv4, "[IPv6]" or "localhost"; PORT:
 * 0..65535, 0 = any free port) into *addr and *addrlen. Returns 0, or -1
 * with a message in err. Pure; no name resolution. */
int cfg_parse_listen(const char *s, struct sockaddr_storage *addr, socklen_t *addrlen,
                     char *err, size_t errlen);

/* For a valid device string: N for "cuda:N", -1 for "cpu" and "auto". */
int cfg_device_cuda_index(const char *device);

#endif
