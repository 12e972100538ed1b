/* util.h: allocation helpers that abort on out-of-memory.
 *
 * The daemon is a program, not a library: when malloc fails there is no
 * sensible recovery, so these log and abort (antirez's rule). Size limits on
 * client input are enforced before allocating, never by these. */
#ifndef CONVNETD_UTIL_H
#define CONVNETD_UTIL_H

#include <stddef.h>

/* Like malloc/calloc/realloc/strdup but never return NULL: on failure they
 * log the size and abort(). xmalloc(0) returns a unique freeable pointer. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);

#endif
