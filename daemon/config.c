/* config.c: the settings table and its three sources (defaults, file,
 * command line). See config.h for the rules; the table below is the only
 * place a setting is declared. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef enum cfg_type { CFG_STRING, CFG_INT } cfg_type;

/* Extra validation beyond type and bounds; 0 = ok, else -1 and err set. */
typedef int (*cfg_check_fn)(const char *value, char *err, size_t errlen);

/* A setting. For CFG_INT, min/max bound the value; for CFG_STRING they bound
 * the length (max is also capped by the field's size). The field is named by
 * offset rather than by address (redis's &server.field) because the cfg
 * struct is a value callers own, not a global. */
typedef struct cfg_option {
    const char *name;
    cfg_type type;
    const char *def;      /* default in text form, parsed like user input */
    long min, max;
    size_t offset, size;
    cfg_check_fn check;   /* NULL = none */
    const char *arg;      /* placeholder in the usage text */
    const char *help;
} cfg_option;

static int check_listen(const char *value, char *err, size_t errlen);
static int check_device(const char *value, char *err, size_t errlen);

#define STR_FIELD(f) offsetof(cfg, f), sizeof(((cfg *)0)->f)
#define INT_FIELD(f) offsetof(cfg, f), sizeof(long)

static const cfg_option options[] = {
    { .name = "listen", .type = CFG_STRING, .def = "127.0.0.1:8080",
      .min = 1, .max = 127, STR_FIELD(listen), .check = check_listen,
      .arg = "HOST:PORT",
      .help = "address to serve HTTP on; port 0 picks a free port" },
    { .name = "state-dir", .type = CFG_STRING, .def = "/var/lib/convnetd",
      .min = 1, .max = CFG_PATH_MAX - 1, STR_FIELD(state_dir),
      .arg = "DIR", .help = "database and checkpoints; created if missing" },
    { .name = "data-dir", .type = CFG_STRING, .def = "/usr/share/datasets",
      .min = 1, .max = CFG_PATH_MAX - 1, STR_FIELD(data_dir),
      .arg = "DIR", .help = "where datasets are found" },
    { .name = "device", .type = CFG_STRING, .def = "auto",
      .min = 1, .max = 31, STR_FIELD(device), .check = check_device,
      .arg = "auto|cpu|cuda:N",
      .help = "devices to train on: auto = the CPU and every GPU" },
    { .name = "threads", .type = CFG_INT, .def = "0",
      .min = 0, .max = 1024, INT_FIELD(threads),
      .arg = "N", .help = "CPU compute threads; 0 = one per CPU" },
    { .name = "token-file", .type = CFG_STRING, .def = "",
      .min = 0, .max = CFG_PATH_MAX - 1, STR_FIELD(token_file),
      .arg = "FILE", .help = "file holding the bearer token for changes" },
    { .name = "migrations-dir", .type = CFG_STRING, .def = "",
      .min = 0, .max = CFG_PATH_MAX - 1, STR_FIELD(migrations_dir),
      .arg = "DIR", .help = "SQL schema migrations; empty = found by itself" },
    { .name = "web-dir", .type = CFG_STRING, .def = "",
      .min = 0, .max = CFG_PATH_MAX - 1, STR_FIELD(web_dir),
      .arg = "DIR", .help = "the dashboard's static files; empty = found by itself" },
    { .name = "max-queued", .type = CFG_INT, .def = "100",
      .min = 1, .max = 100000, INT_FIELD(max_queued),
      .arg = "N", .help = "queued jobs at most; more are refused with 429" },
    { .name = "metrics-flush", .type = CFG_INT, .def = "50",
      .min = 1, .max = 100000, INT_FIELD(metrics_flush),
      .arg = "N", .help = "loss rows per database write (also each second)" },
    { .name = "request-timeout", .type = CFG_INT, .def = "60",
      .min = 1, .max = 3600, INT_FIELD(request_timeout),
      .arg = "SECONDS", .help = "idle or trickling connections are closed after this" },
    { .name = "max-connections", .type = CFG_INT, .def = "64",
      .min = 1, .max = 4096, INT_FIELD(max_connections),
      .arg = "N", .help = "open HTTP connections at most (one thread each)" },
    { .name = "max-connections-per-ip", .type = CFG_INT, .def = "0",
      .min = 0, .max = 4096, INT_FIELD(max_connections_per_ip),
      .arg = "N", .help = "open HTTP connections per client address; 0 = no limit" },
    { .name = "max-body", .type = CFG_INT, .def = "16777216",
      .min = 1024, .max = 268435456, INT_FIELD(max_body),
      .arg = "BYTES", .help = "request bodies at most, on every route; more get 413" },
    { .name = "max-image-pixels", .type = CFG_INT, .def = "16777216",
      .min = 1, .max = 16777216, INT_FIELD(max_image_pixels),
      .arg = "N", .help = "pixels (width x height) of an uploaded image; 16777216 at most" },
};

#define NOPTIONS (sizeof options / sizeof options[0])

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- the table ---- */

/* Finds an option by name; '_' matches '-' so "state_dir" works too. */
static const cfg_option *find_option(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTIONS; i++) {
        const char *n = options[i].name;
        size_t j = 0;
        if (strlen(n) != len)
            continue;
        while (j < len && (name[j] == n[j] || (name[j] == '_' && n[j] == '-')))
            j++;
        if (j == len)
            return &options[i];
    }
    return NULL;
}

/* Parses value into the option's field of c. On error c is unchanged. */
static int set_option(cfg *c, const cfg_option *o, const char *value,
                      char *err, size_t errlen)
{
    char *field = (char *)c + o->offset;

    if (o->type == CFG_INT) {
        char *end;
        long v;
        errno = 0;
        v = strtol(value, &end, 10);
        if (end == value || *end != '\0' || errno == ERANGE || isspace((unsigned char)*value)) {
            seterr(err, errlen, "%s: '%s' is not an integer", o->name, value);
            return -1;
        }
        if (v < o->min || v > o->max) {
            seterr(err, errlen, "%s: %ld is out of range (%ld..%ld)",
                   o->name, v, o->min, o->max);
            return -1;
        }
        memcpy(field, &v, sizeof v);
        return 0;
    }

    size_t len = strlen(value);
    size_t max = (size_t)o->max < o->size - 1 ? (size_t)o->max : o->size - 1;
    if (len < (size_t)o->min) {
        seterr(err, errlen, "%s: must not be empty", o->name);
        return -1;
    }
    if (len > max) {
        seterr(err, errlen, "%s: value is %zu bytes long, the limit is %zu",
               o->name, len, max);
        return -1;
    }
    if (o->check != NULL && o->check(value, err, errlen) != 0)
        return -1;
    memcpy(field, value, len + 1);
    return 0;
}

void cfg_defaults(cfg *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NOPTIONS; i++) {
        /* The defaults go through the same parser as user input, and a test
         * checks that they all pass it, so this cannot fail. */
        (void)set_option(c, &options[i], options[i].def, NULL, 0);
    }
}

int cfg_set(cfg *c, const char *key, const char *value, char *err, size_t errlen)
{
    const cfg_option *o = find_option(key, strlen(key));
    if (o == NULL) {
        seterr(err, errlen, "unknown setting '%s'", key);
        return -1;
    }
    return set_option(c, o, value, err, errlen);
}

/* ---- validators ---- */

int cfg_parse_listen(const char *s, struct sockaddr_storage *addr, socklen_t *addrlen,
                     char *err, size_t errlen)
{
    char host[64];
    const char *colon, *hstart, *hend;
    char *end;
    long port;

    if (s[0] == '[') {
        hstart = s + 1;
        hend = strchr(s, ']');
        if (hend == NULL || hend[1] != ':') {
            seterr(err, errlen, "listen: '%s' is not [IPv6]:PORT", s);
            return -1;
        }
        colon = hend + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            seterr(err, errlen, "listen: '%s' is not HOST:PORT", s);
            return -1;
        }
        hstart = s;
        hend = colon;
    }
    if ((size_t)(hend - hstart) >= sizeof host || hend == hstart) {
        seterr(err, errlen, "listen: bad host in '%s'", s);
        return -1;
    }
    memcpy(host, hstart, (size_t)(hend - hstart));
    host[hend - hstart] = '\0';

    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (!isdigit((unsigned char)colon[1]) || *end != '\0' || errno != 0 ||
        port < 0 || port > 65535) {
        seterr(err, errlen, "listen: port in '%s' must be 0..65535", s);
        return -1;
    }

    memset(addr, 0, sizeof *addr);
    if (s[0] == '[') {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1) {
            seterr(err, errlen, "listen: '%s' is not an IPv6 address", host);
            return -1;
        }
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((unsigned short)port);
        *addrlen = sizeof *a6;
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)addr;
        /* Only numeric hosts: resolving names at start-up would make the
         * bound address depend on DNS. "localhost" is the one exception. */
        const char *h = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
        if (inet_pton(AF_INET, h, &a4->sin_addr) != 1) {
            seterr(err, errlen,
                   "listen: '%s' is not a numeric IPv4 address ([...] for IPv6)", host);
            return -1;
        }
        a4->sin_family = AF_INET;
        a4->sin_port = htons((unsigned short)port);
        *addrlen = sizeof *a4;
    }
    return 0;
}

static int check_listen(const char *value, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    return cfg_parse_listen(value, &ss, &len, err, errlen);
}

int cfg_device_cuda_index(const char *device)
{
    if (strncmp(device, "cuda:", 5) != 0)
        return -1;
    return atoi(device + 5);  /* validated by check_device: digits, 0..63 */
}

static int check_device(const char *value, char *err, size_t errlen)
{
    if (strcmp(value, "auto") == 0 || strcmp(value, "cpu") == 0)
        return 0;
    if (strncmp(value, "cuda:", 5) == 0) {
        const char *d = value + 5;
        size_t n = strspn(d, "0123456789");
        if (n >= 1 && n <= 2 && d[n] == '\0' && atoi(d) <= 63)
            return 0;
    }
    seterr(err, errlen, "device: '%s' is not auto, cpu or cuda:N (N = 0..63)", value);
    return -1;
}

/* ---- config file ---- */

static char *trim(char *s)
{
    char *e;
    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int cfg_load_file(cfg *c, const char *path, char *err, size_t errlen)
{
    char line[1024], msg[512];
    int lineno = 0, rc = -1;
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        seterr(err, errlen, "cannot open config file %s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        size_t len = strlen(line);
        char *key, *value, *eq;
        const cfg_option *o;

        lineno++;
        if (len == sizeof line - 1 && line[len - 1] != '\n' && !feof(f)) {
            seterr(err, errlen, "%s:%d: line is longer than %zu bytes",
                   path, lineno, sizeof line - 2);
            goto fail;
        }
        key = trim(line);
        if (*key == '\0' || *key == '#')
            continue;
        eq = strchr(key, '=');
        if (eq == NULL) {
            seterr(err, errlen, "%s:%d: expected 'key = value'", path, lineno);
            goto fail;
        }
        *eq = '\0';
        key = trim(key);
        value = trim(eq + 1);
        o = find_option(key, strlen(key));
        if (o == NULL) {
            seterr(err, errlen, "%s:%d: unknown key '%s'", path, lineno, key);
            goto fail;
        }
        if (set_option(c, o, value, msg, sizeof msg) != 0) {
            seterr(err, errlen, "%s:%d: %s", path, lineno, msg);
            goto fail;
        }
    }
    if (ferror(f)) {
        seterr(err, errlen, "%s: read error: %s", path, strerror(errno));
        goto fail;
    }
    rc = 0;
fail:
    fclose(f);
    return rc;
}

/* ---- command line ---- */

enum { OPT_CONFIG = -1, OPT_HELP = -2, OPT_VERSION = -3 };

/* Reads the option at argv[*i] and advances *i past it and its value.
 * Sets *opt to the table entry (or NULL with *special set for --config,
 * --help, --version) and *value to its argument. Returns 0 or -1 + err. */
static int next_option(int argc, char *const argv[], int *i, const cfg_option **opt,
                       int *special, const char **value, char *err, size_t errlen)
{
    const char *a = argv[*i];
    const char *eq;
    size_t namelen;

    *opt = NULL;
    *special = 0;
    *value = NULL;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
        *special = OPT_HELP;
        (*i)++;
        return 0;
    }
    if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
        *special = OPT_VERSION;
        (*i)++;
        return 0;
    }
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
        seterr(err, errlen, "unexpected argument '%s' (see --help)", a);
        return -1;
    }
    a += 2;
    eq = strchr(a, '=');
    namelen = eq != NULL ? (size_t)(eq - a) : strlen(a);
    if (namelen == 6 && strncmp(a, "config", 6) == 0) {
        *special = OPT_CONFIG;
    } else {
        *opt = find_option(a, namelen);
        if (*opt == NULL) {
            seterr(err, errlen, "unknown option '--%.*s' (see --help)", (int)namelen, a);
            return -1;
        }
    }
    if (eq != NULL) {
        *value = eq + 1;
        (*i)++;
    } else if (*i + 1 < argc) {
        *value = argv[*i + 1];
        *i += 2;
    } else {
        seterr(err, errlen, "option '--%.*s' needs a value", (int)namelen, a);
        return -1;
    }
    return 0;
}

cfg_result cfg_parse_args(cfg *c, int argc, char *const argv[], char *err, size_t errlen)
{
    const char *config_path = NULL;
    const cfg_option *o;
    const char *value;
    int special, i;

    cfg_defaults(c);

    /* Pass 1: syntax, --help/--version, and the config file, which must be
     * applied before any option so that the command line wins. */
    for (i = 1; i < argc;) {
        if (next_option(argc, argv, &i, &o, &special, &value, err, errlen) != 0)
            return CFG_ERROR;
        if (special == OPT_HELP)
            return CFG_HELP;
        if (special == OPT_VERSION)
            return CFG_VERSION;
        if (special == OPT_CONFIG)
            config_path = value;
    }
    if (config_path != NULL) {
        if (strlen(config_path) >= sizeof c->config_file) {
            seterr(err, errlen, "config: path is too long");
            return CFG_ERROR;
        }
        strcpy(c->config_file, config_path);
        if (cfg_load_file(c, config_path, err, errlen) != 0)
            return CFG_ERROR;
    }

    /* Pass 2: the options themselves, in order; a repeated option's last
     * value wins, as with most Unix tools. */
    for (i = 1; i < argc;) {
        if (next_option(argc, argv, &i, &o, &special, &value, err, errlen) != 0)
            return CFG_ERROR;
        if (o != NULL && set_option(c, o, value, err, errlen) != 0)
            return CFG_ERROR;
    }
    return CFG_RUN;
}

void cfg_usage(FILE *out)
{
    fprintf(out, "Usage: convnetd [options]\n\n"
                 "Trains convolutional networks and serves them over HTTP.\n\n"
                 "Options (each also a `key = value` line in the config file):\n");
    for (size_t i = 0; i < NOPTIONS; i++) {
        const cfg_option *o = &options[i];
        char left[64];
        snprintf(left, sizeof left, "--%s %s", o->name, o->arg);
        fprintf(out, "  %-30s %s", left, o->help);
        if (o->def[0] != '\0')
            fprintf(out, " (default %s)", o->def);
        fputc('\n', out);
    }
    fprintf(out, "  %-30s %s\n", "--config FILE",
            "read settings from FILE; options given here override it");
    fprintf(out, "  %-30s %s\n", "-h, --help", "print this help and exit");
    fprintf(out, "  %-30s %s\n", "-V, --version", "print the version and exit");
    fprintf(out, "\nExit status: 0 after a clean shutdown, 1 on a run-time error,\n"
                 "2 on a bad option or setting.\n");
}
