/* sdnotify.h: the systemd readiness protocol (sd_notify), without libsystemd.
 *
 * The protocol is one datagram of "KEY=VALUE\n..." text to the AF_UNIX socket
 * named by $NOTIFY_SOCKET; that is all this implements (no fd passing, no
 * watchdog). */
#ifndef CONVNETD_SDNOTIFY_H
#define CONVNETD_SDNOTIFY_H

/* Sends state (e.g. "READY=1\nSTATUS=listening on ...") to $NOTIFY_SOCKET.
 * A name starting with '@' is an abstract socket. Returns 1 when sent, 0 when
 * NOTIFY_SOCKET is unset or empty (not run by systemd: nothing to do), -1 on
 * error with errno set (EINVAL for an unusable socket name). Thread-safe. */
int sdnotify_send(const char *state);

#endif
