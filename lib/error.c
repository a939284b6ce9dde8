/* SPDX-License-Identifier: MIT */
/* error.c - the thread's last error sentence. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static __thread char last_error[512];

const char *shmk_last_error(void) { return last_error; }

const char *shmk_version(void) { return SHMK_VERSION_STRING; }

int shmk__err(int rc, const char *fmt, ...)
{
	int saved = errno;
	char buf[sizeof last_error];
	va_list ap;

	/* Through a copy: callers may prefix the previous sentence, passing
	 * shmk_last_error() itself as an argument. */
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	memcpy(last_error, buf, sizeof buf);
	errno = saved;
	return rc;
}

int shmk__fiu_errno(void)
{
	void *info = fiu_failinfo();

	return info ? (int)(intptr_t)info : EIO;
}

void shmk__close(int *fd)
{
	int saved = errno;

	if (*fd >= 0)
		close(*fd);
	*fd = -1;
	errno = saved;
}
