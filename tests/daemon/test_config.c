/* test_config.c: settings from defaults, command lines and config files,
 * good and bad, as pure functions (config files in a temporary directory).
 *
 * Every bad input must be an error with a message naming the problem, and
 * must leave earlier settings alone. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"

static char tmpdir[] = "/tmp/convnetd-test-config-XXXXXX";

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Writes text to tmpdir/name, puts that path in path (len bytes), returns it. */
static const char *write_file(const char *name, const char *text, char *path, size_t len)
{
    FILE *f;
    snprintf(path, len, "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
    return path;
}

static cfg_result parse(cfg *c, int argc, char *const argv[], char *err, size_t errlen)
{
    err[0] = '\0';
    return cfg_parse_args(c, argc, argv, err, errlen);
}

static void test_defaults(void)
{
    cfg c;
    char *argv[] = { "convnetd" };
    char err[256];

    cfg_defaults(&c);
    CHECK(strcmp(c.listen, "127.0.0.1:8080") == 0);
    CHECK(strcmp(c.device, "auto") == 0);
    CHECK(c.threads == 0);
    CHECK(c.state_dir[0] == '/');
    CHECK(c.data_dir[0] == '/');
    CHECK(c.token_file[0] == '\0');
    CHECK(parse(&c, ARGC(argv), argv, err, sizeof err) == CFG_RUN);
    CHECK(strcmp(c.listen, "127.0.0.1:8080") == 0);
    CHECK(c.config_file[0] == '\0');
}

static void test_good_args(void)
{
    cfg c;
    char err[256];
    char *argv[] = { "convnetd", "--listen", "127.0.0.1:0", "--state-dir", "/tmp/s",
                     "--data-dir=/data", "--device", "cuda:1", "--threads", "8",
                     "--token-file", "/etc/tok" };
    char *argv2[] = { "convnetd", "--threads", "2", "--threads=5", "--device", "cpu",
                      "--listen", "[::1]:9000" };

    CHECK(parse(&c, ARGC(argv), argv, err, sizeof err) == CFG_RUN);
    CHECK(strcmp(c.listen, "127.0.0.1:0") == 0);
    CHECK(strcmp(c.state_dir, "/tmp/s") == 0);
    CHECK(strcmp(c.data_dir, "/data") == 0);
    CHECK(strcmp(c.device, "cuda:1") == 0);
    CHECK(cfg_device_cuda_index(c.device) == 1);
    CHECK(c.threads == 8);
    CHECK(strcmp(c.token_file, "/etc/tok") == 0);

    /* Repeated options: the last wins. */
    CHECK(parse(&c, ARGC(argv2), argv2, err, sizeof err) == CFG_RUN);
    CHECK(c.threads == 5);
    CHECK(cfg_device_cuda_index(c.device) == -1);
    CHECK(strcmp(c.listen, "[::1]:9000") == 0);
}

static void test_help_version(void)
{
    cfg c;
    char err[256];
    char *h1[] = { "convnetd", "--help" };
    char *h2[] = { "convnetd", "--threads", "2", "-h" };
    char *v1[] = { "convnetd", "--version" };
    char *v2[] = { "convnetd", "-V" };

    CHECK(parse(&c, ARGC(h1), h1, err, sizeof err) == CFG_HELP);
    CHECK(parse(&c, ARGC(h2), h2, err, sizeof err) == CFG_HELP);
    CHECK(parse(&c, ARGC(v1), v1, err, sizeof err) == CFG_VERSION);
    CHECK(parse(&c, ARGC(v2), v2, err, sizeof err) == CFG_VERSION);
}

/* argv must fail to parse with a message containing want. */
static void expect_error(int argc, char *const argv[], const char *want, int line)
{
    cfg c;
    char err[512];
    cfg_result r = parse(&c, argc, argv, err, sizeof err);
    CHECKF(r == CFG_ERROR, "line %d: result %d", line, (int)r);
    CHECKF(strstr(err, want) != NULL, "line %d: message '%s' lacks '%s'", line, err, want);
}

#define EXPECT_ERROR(want, ...)                                                 \
    do {                                                                        \
        char *argv_[] = { "convnetd", __VA_ARGS__ };                            \
        expect_error(ARGC(argv_), argv_, want, __LINE__);                       \
    } while (0)

static void test_bad_args(void)
{
    char longpath[CFG_PATH_MAX + 10];

    EXPECT_ERROR("--nope", "--nope", "1");
    EXPECT_ERROR("--nope", "--nope=1");
    EXPECT_ERROR("unexpected argument 'stray'", "stray");
    EXPECT_ERROR("unexpected argument '-x'", "-x");
    EXPECT_ERROR("needs a value", "--threads");
    EXPECT_ERROR("needs a value", "--config");
    EXPECT_ERROR("out of range", "--threads", "5000");
    EXPECT_ERROR("out of range", "--threads", "-1");
    EXPECT_ERROR("not an integer", "--threads", "abc");
    EXPECT_ERROR("not an integer", "--threads", "4x");
    EXPECT_ERROR("not an integer", "--threads", "");
    EXPECT_ERROR("not an integer", "--threads", " 4");
    EXPECT_ERROR("not an integer", "--threads", "99999999999999999999999");
    EXPECT_ERROR("listen", "--listen", "127.0.0.1");
    EXPECT_ERROR("listen", "--listen", "127.0.0.1:70000");
    EXPECT_ERROR("listen", "--listen", "127.0.0.1:-1");
    EXPECT_ERROR("listen", "--listen", "127.0.0.1:");
    EXPECT_ERROR("listen", "--listen", "127.0.0.1:80x");
    EXPECT_ERROR("listen", "--listen", "example.com:80");
    EXPECT_ERROR("listen", "--listen", ":80");
    EXPECT_ERROR("listen", "--listen", "[::1]");
    EXPECT_ERROR("listen", "--listen", "[nope]:80");
    EXPECT_ERROR("listen", "--listen", "");
    EXPECT_ERROR("device", "--device", "gpu");
    EXPECT_ERROR("device", "--device", "cuda:");
    EXPECT_ERROR("device", "--device", "cuda:64");
    EXPECT_ERROR("device", "--device", "cuda:1x");
    EXPECT_ERROR("device", "--device", "cuda:-1");
    EXPECT_ERROR("state-dir: must not be empty", "--state-dir", "");
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    EXPECT_ERROR("limit", "--data-dir", longpath);
}

static void test_set_and_listen(void)
{
    cfg c;
    char err[256];
    struct sockaddr_storage ss;
    socklen_t len = 0;

    cfg_defaults(&c);
    CHECK(cfg_set(&c, "threads", "4", err, sizeof err) == 0 && c.threads == 4);
    /* A rejected value leaves the old one. */
    CHECK(cfg_set(&c, "threads", "9999", err, sizeof err) == -1 && c.threads == 4);
    CHECK(cfg_set(&c, "device", "tpu", err, sizeof err) == -1 && strcmp(c.device, "auto") == 0);
    CHECK(cfg_set(&c, "state_dir", "/x", err, sizeof err) == 0 && strcmp(c.state_dir, "/x") == 0);
    CHECK(cfg_set(&c, "colour", "red", err, sizeof err) == -1);
    CHECK(strstr(err, "colour") != NULL);
    CHECK(cfg_set(&c, "config", "/x", NULL, 0) == -1);

    CHECK(cfg_parse_listen("127.0.0.1:0", &ss, &len, err, sizeof err) == 0);
    CHECK(ss.ss_family == AF_INET && len == sizeof(struct sockaddr_in));
    CHECK(ntohs(((struct sockaddr_in *)&ss)->sin_port) == 0);
    CHECK(cfg_parse_listen("10.1.2.3:65535", &ss, &len, err, sizeof err) == 0);
    CHECK(ntohs(((struct sockaddr_in *)&ss)->sin_port) == 65535);
    CHECK(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) == 0x0a010203);
    CHECK(cfg_parse_listen("localhost:8080", &ss, &len, err, sizeof err) == 0);
    CHECK(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) == INADDR_LOOPBACK);
    CHECK(cfg_parse_listen("[::1]:443", &ss, &len, err, sizeof err) == 0);
    CHECK(ss.ss_family == AF_INET6 && len == sizeof(struct sockaddr_in6));
    CHECK(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) == 443);
    CHECK(cfg_device_cuda_index("cuda:12") == 12);
    CHECK(cfg_device_cuda_index("auto") == -1);
}

static void test_files(void)
{
    cfg c;
    char err[512], good[600], arg[700];

    write_file("good.conf",
               "# convnetd test config\n"
               "\n"
               "   listen = 127.0.0.1:9100   \n"
               "state_dir=/srv/state\n"
               "\t# indented comment\n"
               "data-dir = /srv/data#1\n"
               "threads = 3\n"
               "token-file =\n",
               good, sizeof good);
    cfg_defaults(&c);
    CHECKF(cfg_load_file(&c, good, err, sizeof err) == 0, "%s", err);
    CHECK(strcmp(c.listen, "127.0.0.1:9100") == 0);
    CHECK(strcmp(c.state_dir, "/srv/state") == 0);
    CHECK(strcmp(c.data_dir, "/srv/data#1") == 0);  /* '#' inside a value is literal */
    CHECK(c.threads == 3);
    CHECK(c.token_file[0] == '\0');

    /* The command line overrides the file, wherever --config appears. */
    {
        char *argv[] = { "convnetd", "--threads", "7", "--config", good };
        CHECK(parse(&c, ARGC(argv), argv, err, sizeof err) == CFG_RUN);
        CHECK(c.threads == 7);
        CHECK(strcmp(c.state_dir, "/srv/state") == 0);
        CHECK(strcmp(c.config_file, good) == 0);
    }
    snprintf(arg, sizeof arg, "--config=%s", good);
    {
        char *argv[] = { "convnetd", arg, "--listen", "127.0.0.1:1" };
        CHECK(parse(&c, ARGC(argv), argv, err, sizeof err) == CFG_RUN);
        CHECK(strcmp(c.listen, "127.0.0.1:1") == 0);
        CHECK(c.threads == 3);
    }
}

/* A config file with text must fail to load with a message containing want. */
static void expect_file_error(const char *text, const char *want, int line)
{
    cfg c;
    char path[600], err[512] = "";
    write_file("bad.conf", text, path, sizeof path);
    cfg_defaults(&c);
    CHECKF(cfg_load_file(&c, path, err, sizeof err) == -1, "line %d", line);
    CHECKF(strstr(err, want) != NULL, "line %d: message '%s' lacks '%s'", line, err, want);
    {
        char *argv[] = { "convnetd", "--config", path };
        CHECKF(parse(&c, ARGC(argv), argv, err, sizeof err) == CFG_ERROR, "line %d", line);
    }
}

static void test_bad_files(void)
{
    char longline[1100], text[1200];
    cfg c;
    char err[512];

    expect_file_error("threads = 2\ncolour = red\n", "bad.conf:2: unknown key 'colour'", __LINE__);
    expect_file_error("threads = 5000\n", "bad.conf:1: threads: 5000 is out of range", __LINE__);
    expect_file_error("# c\nthreads\n", "bad.conf:2: expected 'key = value'", __LINE__);
    expect_file_error("config = /etc/other.conf\n", "unknown key 'config'", __LINE__);
    expect_file_error("device = cuda:x\n", "device", __LINE__);
    expect_file_error("threads = 4 # four\n", "not an integer", __LINE__);
    expect_file_error("= 4\n", "unknown key ''", __LINE__);
    memset(longline, 'a', sizeof longline - 1);
    longline[sizeof longline - 1] = '\0';
    snprintf(text, sizeof text, "state-dir = /%s\n", longline);
    expect_file_error(text, "longer than", __LINE__);

    cfg_defaults(&c);
    CHECK(cfg_load_file(&c, "/nonexistent/convnetd.conf", err, sizeof err) == -1);
    CHECK(strstr(err, "/nonexistent/convnetd.conf") != NULL);
}

static void test_usage(void)
{
    char path[600], buf[4096];
    size_t n;
    FILE *f;

    snprintf(path, sizeof path, "%s/usage.txt", tmpdir);
    f = fopen(path, "w+");
    CHECK(f != NULL);
    if (f == NULL)
        return;
    cfg_usage(f);
    rewind(f);
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(path);
    CHECK(strstr(buf, "--listen HOST:PORT") != NULL);
    CHECK(strstr(buf, "--state-dir DIR") != NULL);
    CHECK(strstr(buf, "--token-file FILE") != NULL);
    CHECK(strstr(buf, "--config FILE") != NULL);
}

int main(void)
{
    char path[600];

    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_defaults();
    test_good_args();
    test_help_version();
    test_bad_args();
    test_set_and_listen();
    test_files();
    test_bad_files();
    test_usage();
    snprintf(path, sizeof path, "%s/good.conf", tmpdir);
    unlink(path);
    snprintf(path, sizeof path, "%s/bad.conf", tmpdir);
    unlink(path);
    rmdir(tmpdir);
    return check_result("daemon_config");
}
