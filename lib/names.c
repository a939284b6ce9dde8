/* names.c - what a namespace, a segment name, an owner id and a role may be.
 *
 * Segments of namespace ns are "/<ns>.<name>": the dot ends the namespace,
 * so a prefix scan of /dev/shm for "<ns>." finds the namespace's objects and
 * nothing else (not "<ns>x..." nor "<ns>-other.").  Namespace names cannot
 * hold a dot, so one namespace is never a prefix of another's scan. */
#include "internal.h"

#include <string.h>

static bool is_nschar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* glibc keeps the named semaphore "/x" as the object "sem.x" in /dev/shm:
 * namespace "sem" would take the host's semaphores for its segments (and a
 * stray scan would remove them). */
#define SHMK_NS_SEM "sem"

bool shmk__ns_ok(const char *ns)
{
	size_t n = 0;

	if (!ns || strcmp(ns, SHMK_NS_SEM) == 0)
		return false;
	for (; ns[n]; n++)
		if (n >= SHMK_NS_MAX || !is_nschar((unsigned char)ns[n]))
			return false;
	return n > 0;
}

bool shmk__segname_ok(const char *name)
{
	size_t n = 0;

	if (!name || name[0] == '\0' || name[0] == '.')
		return false; /* also rules out "." and ".." */
	for (; name[n]; n++)
		if (n >= SHMK_SEGNAME_MAX ||
		    !(is_nschar((unsigned char)name[n]) || name[n] == '.'))
			return false;
	return true;
}

bool shmk__fullname_in_ns(const char *full, const char *ns)
{
	size_t l = strlen(ns);

	if (full[0] == '/')
		full++;
	return strncmp(full, ns, l) == 0 && full[l] == '.' &&
	       shmk__segname_ok(full + l + 1);
}

bool shmk__owner_id_ok(const char *id)
{
	size_t n = 0;

	if (!id || !id[0] || id[0] == '.')
		return false;
	for (; id[n]; n++)
		if (n >= SHMK_ID_MAX - 1 || !is_nschar((unsigned char)id[n]))
			return false;
	return true;
}

bool shmk__role_ok(const char *role)
{
	size_t n = 0;

	if (!role)
		return true;
	for (; role[n]; n++) {
		unsigned char c = (unsigned char)role[n];
		if (n >= SHMK_ROLE_MAX ||
		    !(is_nschar(c) || strchr(" .:@/+", c)))
			return false;
	}
	return true;
}

int shmk_ns_check(const char *ns)
{
	if (ns && strcmp(ns, SHMK_NS_SEM) == 0)
		return shmk__err(-EINVAL,
				 "namespace \"%s\": refused: glibc keeps named "
				 "semaphores as /dev/shm/sem.<name>, so its "
				 "objects would be the host's semaphores",
				 ns);
	if (!shmk__ns_ok(ns))
		return shmk__err(-EINVAL,
				 "namespace \"%.64s\": invalid: must be 1 to %d "
				 "characters of [A-Za-z0-9_-]",
				 ns ? ns : "(null)", SHMK_NS_MAX);
	return 0;
}

int shmk_name_check(const char *name)
{
	if (name && strlen(name) > SHMK_SEGNAME_MAX)
		return shmk__err(-ENAMETOOLONG,
				 "segment name \"%.64s...\": too long (max %d)",
				 name, SHMK_SEGNAME_MAX);
	if (!shmk__segname_ok(name))
		return shmk__err(-EINVAL,
				 "segment name \"%.64s\": invalid: must be "
				 "[A-Za-z0-9_.-], not start with '.', and hold "
				 "no '/'",
				 name ? name : "(null)");
	return 0;
}
