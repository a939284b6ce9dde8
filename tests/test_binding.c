/* SPDX-License-Identifier: MIT */
/* test_binding.c - what bindings rely on: shmk_layout() answers the layout
 * of every described struct as the compiler laid it out, lists every field
 * (a binding checking its copy against it would miss one that is not
 * listed), and says which struct or field it does not know; a segment
 * handle can be detached after its context is closed, and its memory stays
 * valid until then. */
#include "helpers.h"
#include "internal.h" /* shmk__layouts: the table itself */

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

TestSuite(binding, .init = tenv_setup, .fini = tenv_teardown, .timeout = 30);

static const char *const described[] = {
	"shmk_options", "shmk_reap_options", "shmk_reap_item", "shmk_reap_report",
	"shmk_monitor_options", "shmk_sample", "shmk_verdict",
};

static size_t layout_size(const char *type, const char *field)
{
	size_t off = 99, size = 0;
	int rc = shmk_layout(type, field, &off, &size);

	cr_assert_eq(rc, 0, "shmk_layout(%s, %s): %d %s", type,
		     field ? field : "NULL", rc, shmk_last_error());
	return size;
}

static size_t layout_offset(const char *type, const char *field)
{
	size_t off = 99;

	cr_assert_eq(shmk_layout(type, field, &off, NULL), 0, "%s",
		     shmk_last_error());
	return off;
}

Test(binding, gives_the_size_of_every_described_struct)
{
	cr_assert_eq(layout_size("shmk_options", NULL), sizeof(struct shmk_options));
	cr_assert_eq(layout_size("shmk_reap_options", NULL),
		     sizeof(struct shmk_reap_options));
	cr_assert_eq(layout_size("shmk_reap_item", NULL),
		     sizeof(struct shmk_reap_item));
	cr_assert_eq(layout_size("shmk_reap_report", NULL),
		     sizeof(struct shmk_reap_report));
	cr_assert_eq(layout_size("shmk_monitor_options", NULL),
		     sizeof(struct shmk_monitor_options));
	cr_assert_eq(layout_size("shmk_sample", NULL), sizeof(struct shmk_sample));
	cr_assert_eq(layout_size("shmk_verdict", NULL), sizeof(struct shmk_verdict));
	cr_assert_eq(layout_offset("shmk_sample", NULL), 0);
}

Test(binding, gives_offset_and_size_of_fields_as_the_compiler_laid_them_out)
{
	cr_assert_eq(layout_offset("shmk_reap_item", "bytes"),
		     offsetof(struct shmk_reap_item, bytes));
	cr_assert_eq(layout_size("shmk_reap_item", "holders"), sizeof(pid_t *));
	cr_assert_eq(layout_offset("shmk_reap_report", "bytes_held"),
		     offsetof(struct shmk_reap_report, bytes_held));
	cr_assert_eq(layout_offset("shmk_monitor_options", "on_soft"),
		     offsetof(struct shmk_monitor_options, on_soft));
	cr_assert_eq(layout_size("shmk_verdict", "reason"),
		     sizeof(((struct shmk_verdict *)0)->reason));
	cr_assert_eq(layout_offset("shmk_verdict", "reason"),
		     offsetof(struct shmk_verdict, reason));
	cr_assert_eq(layout_size("shmk_options", "budget_bytes"), 8);
}

/* A field's alignment as the x86-64 and aarch64 ABIs give it: a scalar or
 * pointer is aligned to its size, a char array to 1. */
static size_t align_of(size_t size)
{
	return (size == 1 || size == 2 || size == 4 || size == 8) ? size : 1;
}

/* Walks the table the way a binding would see it: each field must start
 * exactly where the previous one ends, rounded up to its alignment, and the
 * struct must end where the last field does, rounded up to the largest
 * alignment.  A field of the header missing from the table leaves a wider
 * gap and fails here.  (One that fits entirely in padding moves nothing a
 * binding reads, and is zero in a binding's zero-filled options.) */
Test(binding, lists_every_field_of_every_described_struct)
{
	size_t n_structs = 0;

	for (const struct shmk__layout *l = shmk__layouts; l->type;) {
		const char *type = l->type;
		size_t size = l->size, end = 0, max_align = 1, n = 0;

		cr_assert_null(l->field, "%s: the size row comes first", type);
		n_structs++;
		for (l++; l->type && !strcmp(l->type, type); l++) {
			size_t a = align_of(l->size);

			cr_assert_not_null(l->field, "%s: two size rows", type);
			cr_assert_eq(l->offset, (end + a - 1) / a * a,
				     "%s.%s at %zu: a field is missing before it "
				     "(previous field ends at %zu)",
				     type, l->field, l->offset, end);
			end = l->offset + l->size;
			if (a > max_align)
				max_align = a;
			n++;
		}
		cr_assert_gt(n, 0, "%s: no field", type);
		cr_assert_eq((end + max_align - 1) / max_align * max_align, size,
			     "%s: fields end at %zu, struct is %zu bytes: a field "
			     "is missing at the end",
			     type, end, size);
	}
	cr_assert_eq(n_structs, sizeof described / sizeof *described);
	for (size_t i = 0; i < sizeof described / sizeof *described; i++)
		cr_assert_gt(layout_size(described[i], NULL), 0);
}

Test(binding, names_the_struct_or_field_it_does_not_describe)
{
	size_t off = 7, size = 7;

	cr_assert_eq(shmk_layout("shmk_nothing", NULL, &off, &size), -ENOENT);
	cr_assert_not_null(strstr(shmk_last_error(), "struct shmk_nothing"),
			   "%s", shmk_last_error());
	cr_assert_eq(shmk_layout("shmk_sample", "no_such", &off, &size), -ENOENT);
	cr_assert_not_null(strstr(shmk_last_error(), "no field no_such"), "%s",
			   shmk_last_error());
	cr_assert_eq(off, 7, "nothing written on failure");
	cr_assert_eq(size, 7);
	cr_assert_eq(shmk_layout(NULL, "x", &off, &size), -EINVAL);
	/* A field name is never taken for the size row, nor the reverse. */
	cr_assert_eq(shmk_layout("shmk_sample", "shmk_sample", NULL, NULL), -ENOENT);
}

/* A binding whose buffers may outlive the namespace (Python's memoryviews)
 * detaches the handle when the last view goes, which may be after the
 * close: the close destroys the segment, the memory stays mapped and
 * usable until the detach. */
Test(binding, a_handle_outlives_its_context_until_it_is_detached)
{
	shmk_ctx *c = topen();
	shmk_segment *seg = NULL;
	unsigned char *p;
	unsigned char vec;

	cr_assert_eq(shmk_segment_create(c, "outlives", 4096, &seg), 0, "%s",
		     shmk_last_error());
	p = shmk_segment_addr(seg);
	p[0] = 0xa5;
	cr_assert_eq(shmk_close(c), 0, "%s", shmk_last_error());
	cr_assert_not(shm_exists("outlives"), "the close destroyed it");
	cr_assert_eq(p[0], 0xa5, "still mapped after the close");
	p[1] = 1;
	shmk_segment_detach(seg);
	/* The page is gone from the address space: mincore says ENOMEM. */
	cr_assert_eq(mincore(p, 4096, &vec), -1);
	cr_assert_eq(errno, ENOMEM);
}
