/* SPDX-License-Identifier: MIT */
/* replay.c - runs a libFuzzer target over saved inputs, without libFuzzer.
 *
 *   replay-<target> [-f] DIR|FILE...
 *
 * Links with one tests/fuzz/fuzz_*.c and calls its LLVMFuzzerTestOneInput()
 * once per regular file (directories are read one level deep, in name
 * order; README* and dot files are skipped).  Each input is an exact-size
 * heap buffer, so that AddressSanitizer sees a read past its end.
 *
 * By default all inputs run in this process, which is fast; a failure (an
 * abort() of the target, a sanitizer report, a signal, 60 s on one input)
 * stops the run and names its file.  With -f each input runs in a child
 * process, so every failing file is named (and a leak is blamed on its
 * input), at the cost of a fork per input.
 *
 * Prints "fuzz-replay: <target>: N inputs, K failures" and exits 1 if K > 0
 * or nothing was found.  Built with -fsanitize=address,undefined by make
 * fuzz-replay, which make check runs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX (64u << 20)
#define INPUT_TIMEOUT 60 /* seconds, for one input */

static unsigned n_inputs, n_failures;
static const char *prog = "fuzz-replay";
static int use_fork;
static const char *volatile current; /* the input being run in process */

/* Sanitizers call this before they end the process (if linked). */
void __sanitizer_set_death_callback(void (*)(void)) __attribute__((weak));

static void say_failed(void)
{
	const char *c = current;

	if (c) {
		/* Only async-signal-safe calls. */
		(void)!write(2, prog, strlen(prog));
		(void)!write(2, ": FAILED: ", 10);
		(void)!write(2, c, strlen(c));
		(void)!write(2, "\n", 1);
		current = NULL;
	}
}

static void on_signal(int sig)
{
	say_failed();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int read_file(const char *path, uint8_t **out, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size > INPUT_MAX) {
		close(fd);
		return -EFBIG;
	}
	/* Exact size (at least 1 byte allocated), so ASan sees overreads. */
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	*out = buf;
	*len = got;
	return 0;
}

static void run_one(const char *path)
{
	pid_t pid;
	int status;

	n_inputs++;
	if (!use_fork) {
		uint8_t *data;
		size_t len;
		int rc = read_file(path, &data, &len);

		if (rc < 0) {
			fprintf(stderr, "%s: %s: cannot read: %s\n", prog, path,
				strerror(-rc));
			n_failures++;
			return;
		}
		current = path;
		alarm(INPUT_TIMEOUT);
		LLVMFuzzerTestOneInput(data, len);
		alarm(0);
		current = NULL;
		free(data);
		return;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
		n_failures++;
		return;
	}
	if (pid == 0) {
		uint8_t *data;
		size_t len;
		int rc = read_file(path, &data, &len);

		if (rc < 0) {
			fprintf(stderr, "%s: %s: cannot read: %s\n", prog, path,
				strerror(-rc));
			_exit(2);
		}
		alarm(INPUT_TIMEOUT);
		LLVMFuzzerTestOneInput(data, len);
		free(data);
		exit(0); /* exit(), not _exit(): LeakSanitizer runs at exit */
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			fprintf(stderr, "%s: waitpid: %s\n", prog,
				strerror(errno));
			n_failures++;
			return;
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return;
	n_failures++;
	if (WIFSIGNALED(status))
		fprintf(stderr, "%s: FAILED: %s: killed by signal %d (%s)\n",
			prog, path, WTERMSIG(status),
			strsignal(WTERMSIG(status)));
	else
		fprintf(stderr, "%s: FAILED: %s: exit status %d\n", prog, path,
			WEXITSTATUS(status));
}

static int skip(const char *name)
{
	return name[0] == '.' || strncmp(name, "README", 6) == 0;
}

static void run_dir(const char *dir)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, alphasort);

	if (n < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, dir, strerror(errno));
		n_failures++;
		return;
	}
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;

		if (!skip(ents[i]->d_name)) {
			snprintf(path, sizeof path, "%s/%s", dir,
				 ents[i]->d_name);
			if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
				run_one(path);
		}
		free(ents[i]);
	}
	free(ents);
}

int main(int argc, char **argv)
{
	const char *base = strrchr(argv[0], '/');
	char label[256];

	base = base ? base + 1 : argv[0];
	if (strncmp(base, "replay-", 7) == 0)
		base += 7;
	snprintf(label, sizeof label, "fuzz-replay: %s", base);
	prog = label;
	if (argc > 1 && strcmp(argv[1], "-f") == 0) {
		use_fork = 1;
		argv++;
		argc--;
	}
	if (argc < 2) {
		fprintf(stderr, "usage: %s [-f] DIR|FILE...\n", argv[0]);
		return 2;
	}
	if (!use_fork) {
		static const int sigs[] = {SIGABRT, SIGSEGV, SIGBUS, SIGFPE,
					   SIGILL, SIGALRM};
		for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
			signal(sigs[i], on_signal);
		if (__sanitizer_set_death_callback)
			__sanitizer_set_death_callback(say_failed);
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "%s: %s: %s\n", prog, argv[i],
				strerror(errno));
			n_failures++;
		} else if (S_ISDIR(st.st_mode)) {
			run_dir(argv[i]);
		} else {
			run_one(argv[i]);
		}
	}
	printf("%s: %u inputs, %u failures\n", prog, n_inputs, n_failures);
	if (n_inputs == 0) {
		fprintf(stderr, "%s: no inputs found\n", prog);
		return 1;
	}
	return n_failures ? 1 : 0;
}
