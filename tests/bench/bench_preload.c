/* SPDX-License-Identifier: MIT */
/* bench_preload.c - shm_open + shm_unlink under libshmkeeper-preload.so,
 * against the same calls without it.
 *
 *   lib : a child process of this program run with LD_PRELOAD=<build>/
 *         libshmkeeper-preload.so (SHMKEEPER_DIR a fresh registry, a
 *         namespace of its own), timing N pairs of
 *         shm_open(O_CREAT|O_EXCL|O_RDWR, 0600) + close + shm_unlink
 *   bare: the same child, the same calls, without LD_PRELOAD
 *
 * Each child does one untimed pair first (the preload's lazy start: the
 * registry opened, the owner's lock file and record made), then times N
 * pairs in CPU time (user + system) and prints ns per pair.  Rounds
 * alternate bare and lib; the verdict is the ratio of the medians.  Both
 * children of a round run on the same CPU, and rounds take the CPUs in
 * turn: on this VM one CPU runs the same pair ~1.45x slower than the
 * other, and a scheduler that put every lib child on it measured 1.8x.
 *
 * What the preload adds per pair: the intent line (one write), the fstat
 * for the inode, the live line (one write), a table lookup under a mutex at
 * the unlink; the drop line is deferred to the next intent's write.
 *
 *   bench_preload [--json] [--rounds N] [--ops N]
 *
 * Budget (docs/DESIGN.md): lib/bare <= 1.3.  Exit status 0 also when over
 * budget; 1 on any functional error; 2 on bad usage. */
#include "bench.h"

#include <libgen.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define PROG "bench_preload"

static int child(size_t ops, const char *name)
{
	uint64_t t0;
	int fd;

	/* Untimed: the preload's lazy start. */
	if ((fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600)) < 0 ||
	    close(fd) < 0 || shm_unlink(name) < 0)
		return 1;
	t0 = bench_cpu_ns();
	for (size_t i = 0; i < ops; i++) {
		if ((fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600)) < 0)
			return 1;
		close(fd);
		if (shm_unlink(name) < 0)
			return 1;
	}
	printf("%.1f\n", (double)(bench_cpu_ns() - t0) / (double)ops);
	return 0;
}

/* Runs this program as a child (preloaded or not); ns per pair, or < 0. */
static double run_child(const char *self, const char *preload, size_t ops,
			const char *name, const char *dir, const char *ns,
			int cpu)
{
	char opsbuf[32], env_pre[PATH_MAX + 16], env_dir[PATH_MAX + 16],
		env_ns[64], out[64] = "";
	char *argv[] = {(char *)self, "--child", opsbuf, (char *)name, NULL};
	char *envp[] = {env_pre, env_dir, env_ns, NULL};
	int p[2], st;
	ssize_t n;
	pid_t pid;

	snprintf(opsbuf, sizeof opsbuf, "%zu", ops);
	snprintf(env_pre, sizeof env_pre, "LD_PRELOAD=%s", preload ? preload : "");
	snprintf(env_dir, sizeof env_dir, "SHMKEEPER_DIR=%s", dir);
	snprintf(env_ns, sizeof env_ns, "SHMKEEPER_NS=%s", ns);
	if (pipe2(p, O_CLOEXEC) < 0 || (pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		cpu_set_t one;

		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		(void)sched_setaffinity(0, sizeof one, &one);
		dup2(p[1], 1);
		execve(self, argv, preload ? envp : envp + 1);
		_exit(127);
	}
	close(p[1]);
	n = read(p[0], out, sizeof out - 1);
	close(p[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (n <= 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return -1;
	return atof(out);
}

int main(int argc, char **argv)
{
	size_t rounds = 21, ops = 20000;
	char self[PATH_MAX], preload[PATH_MAX], dir[PATH_MAX], ns[40],
		name[80], extra_t[128], extra_j[128];
	struct bench_result r = {.id = "preload_shm_open_unlink",
				 .label = "preloaded shm_open+shm_unlink",
				 .budget = 1.3};
	double *lib, *bare;
	cpu_set_t allowed;
	int cpus[CPU_SETSIZE], ncpus = 0;
	bool json = false;
	ssize_t n;
	int rc = 0;

	if (argc == 4 && strcmp(argv[1], "--child") == 0)
		return child(strtoull(argv[2], NULL, 10), argv[3]);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
			rounds = bench_parse_count(PROG, "--rounds", argv[++i], 3);
		else if (strcmp(argv[i], "--ops") == 0 && i + 1 < argc)
			ops = bench_parse_count(PROG, "--ops", argv[++i], 1);
		else {
			fprintf(stderr, "usage: %s [--json] [--rounds N] [--ops N]\n",
				PROG);
			return 2;
		}
	}
	if ((n = readlink("/proc/self/exe", self, sizeof self - 1)) < 0) {
		bench_err(PROG, "/proc/self/exe: %s", strerror(errno));
		return 1;
	}
	self[n] = '\0';
	{
		char tmp[PATH_MAX];
		snprintf(tmp, sizeof tmp, "%s", self);
		snprintf(preload, sizeof preload, "%s/../libshmkeeper-preload.so",
			 dirname(tmp));
	}
	if (access(preload, R_OK) < 0) {
		bench_err(PROG, "%s: %s (make lib)", preload, strerror(errno));
		return 1;
	}
	bench_unique_ns(ns, sizeof ns, "bpl");
	snprintf(name, sizeof name, "/%s_bench", ns);
	if (bench_mkdtemp(dir, sizeof dir, bench_registry_parent(), "preload") < 0)
		return 1;
	lib = calloc(rounds, sizeof *lib);
	bare = calloc(rounds, sizeof *bare);
	if (!lib || !bare)
		return 1;
	if (sched_getaffinity(0, sizeof allowed, &allowed) < 0) {
		CPU_ZERO(&allowed);
		CPU_SET(0, &allowed);
	}
	for (int k = 0; k < CPU_SETSIZE; k++)
		if (CPU_ISSET(k, &allowed))
			cpus[ncpus++] = k;
	for (size_t i = 0; i < rounds && !rc; i++) {
		int cpu = cpus[i % ncpus];

		bare[i] = run_child(self, NULL, ops, name, dir, ns, cpu);
		lib[i] = run_child(self, preload, ops, name, dir, ns, cpu);
		if (bare[i] < 0 || lib[i] < 0) {
			bench_err(PROG, "round %zu: a child failed", i);
			rc = 1;
		}
	}
	if (!rc) {
		r.ops_per_round = ops;
		bench_finish(&r, lib, bare, rounds);
		snprintf(extra_t, sizeof extra_t, "pair ratio %.2f",
			 bench_pair_ratio(lib, bare, rounds));
		snprintf(extra_j, sizeof extra_j, ",\"pair_ratio\":%.3f",
			 bench_pair_ratio(lib, bare, rounds));
		r.extra_text = extra_t;
		r.extra_json = extra_j;
		bench_print(&r, json);
	}
	free(lib);
	free(bare);
	bench_unclaim(ns);
	{
		char p[PATH_MAX];
		snprintf(p, sizeof p, "/dev/shm%s", name);
		unlink(p);
	}
	if (bench_rm_rf(dir) < 0)
		rc = 1;
	bench_registry_parent_done();
	return rc;
}
