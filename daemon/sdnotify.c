/* sdnotify.c: sd_notify(3) by hand (see sdnotify.h). */
#include "sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int sdnotify_send(const char *state)
{
    const char *name = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sun;
    size_t namelen;
    socklen_t addrlen;
    ssize_t sent;
    int fd, saved;

    if (name == NULL || name[0] == '\0')
        return 0;
    namelen = strlen(name);
    /* Only absolute paths and abstract names, as libsystemd accepts. */
    if ((name[0] != '/' && name[0] != '@') || namelen >= sizeof sun.sun_path) {
        errno = EINVAL;
        return -1;
    }
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, name, namelen);
    if (name[0] == '@')
        sun.sun_path[0] = '\0';   /* abstract namespace; the length delimits it */
    addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + namelen);
    if (name[0] == '/')
        addrlen++;                /* include the path's NUL, as libsystemd does */

    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL,
                  (const struct sockaddr *)&sun, addrlen);
    saved = errno;
    close(fd);
    if (sent < 0) {
        errno = saved;
        return -1;
    }
    return 1;
}
