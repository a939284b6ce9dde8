/* SPDX-License-Identifier: MIT */
/* installcheck.c - built against an installed copy with pkg-config by
 * `make installcheck`: the header, the library and shmkeeper.pc work. */
#include <shmkeeper.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* installcheck [DIR [NS]]: a registry directory and a namespace of the
 * caller's (two checks at once on one host must not share a namespace). */
int main(int argc, char **argv)
{
	struct shmk_options o = {.dir = argc > 1 ? argv[1] : NULL,
				 .ns = argc > 2 ? argv[2] : "installcheck"};
	char path[512];
	shmk_ctx *ctx;
	shmk_segment *seg;

	if (shmk_open(&o, &ctx) < 0 ||
	    shmk_segment_create(ctx, "hello", 4096, &seg) < 0) {
		fprintf(stderr, "installcheck: %s\n", shmk_last_error());
		return 1;
	}
	strcpy(shmk_segment_addr(seg), "hello");
	printf("installcheck: created %s with shmkeeper %s\n",
	       shmk_segment_name(seg), shmk_version());
	snprintf(path, sizeof path, "/dev/shm%s", shmk_segment_name(seg));
	if (shmk_segment_destroy(seg) < 0 || shmk_close(ctx) < 0) {
		fprintf(stderr, "installcheck: %s\n", shmk_last_error());
		return 1;
	}
	return access(path, F_OK) == 0;
}
