# SPDX-License-Identifier: MIT
# tests/valgrind.mk - the whole Criterion suite under valgrind memcheck;
# included at the end of the Makefile.  Not part of make check.
#
#   make valgrind       install valgrind if missing (as root, like deps),
#                       build, run every test under memcheck with
#                       --leak-check=full --track-fds=yes --error-exitcode=1;
#                       fails if a test fails, any process reported an
#                       error or a test process leaked a descriptor.
#                       E.g. make B=build-vg valgrind.
#
# Every process is checked.  Criterion runs each test in a process of its
# own that BoxFort starts by fork + exec of the test binary, and the tool
# tests exec build/tools/*: --trace-children=yes follows all of them.  The
# children forked without exec (by tests, the pool, leak-soak) are checked
# too but get no leak search at their exit: they _exit() or are killed
# holding a copy of their parent's heap (tests/valgrind-preload.c, which is
# LD_PRELOADed everywhere for that).  SHMK_TEST_TIMEOUT_SCALE stretches the
# suites' timeouts (tests/helpers.c): everything is 10-50 times slower.
# SHMK_UNDER_VALGRIND makes run_tool() mark the one kind of tool run that is
# not traced, a run under a descriptor limit, whose emulation by valgrind
# differs from the kernel's (see run_tool()).
# One log per process: $(VG_DIR)/<pid>.log; errors in them are framed by
# VG_MARK so that one grep finds them all, whatever process they were in
# (a forked child's error code reaches no one: the pool does not judge its
# supervisor's exit status, and Criterion passes a test whose process exits
# 1 after its last assertion).  Descriptors a test process still holds at
# its exit are judged by tests/valgrind-fds.awk.  Third-party noise:
# tests/valgrind.supp.
# Variables: VG_JOBS (tests run in parallel, default 2), VALGRIND_EXTRA
# (more valgrind options, e.g. VALGRIND_EXTRA=--track-origins=yes).

VALGRIND       ?= valgrind
VALGRIND_EXTRA ?=
VG_JOBS        ?= 2
VG_DIR          = $(B)/valgrind
VG_PRELOAD      = $(B)/valgrind-preload.so
VG_MARK         = @@shmk-vg-error@@
# --vgdb=no: no gdbserver FIFO (a test's child with a descriptor limit of 6
# could not open it).  --freelist-vol=2000000 (default 20 MB): freed blocks
# valgrind holds back count in a process's RSS, and leak-soak's verdict,
# which the soak tests check, reads RSS: a reap's /proc pass frees 64 KiB
# buffers each cycle, which the default quarantine turned into +8 MiB.
VALGRIND_FLAGS  = --leak-check=full --track-fds=yes --error-exitcode=1 \
		  --trace-children=yes --trace-children-skip-by-arg=shmk-vg-untraced \
		  --num-callers=30 --vgdb=no --freelist-vol=2000000 \
		  --suppressions=$(CURDIR)/tests/valgrind.supp \
		  --error-markers=$(VG_MARK),@@shmk-vg-end@@ \
		  --log-file=$(abspath $(VG_DIR))/%p.log $(VALGRIND_EXTRA)
# Suite timeouts are stretched 10 times by the tests themselves; this is the
# one for tests of no suite timeout (the default 120 s, times 10).
VG_CRITERION_ARGS ?= --jobs=$(VG_JOBS) --timeout=1200

.PHONY: valgrind valgrind-deps

# valgrind and its client-request header (package valgrind on Debian).
valgrind-deps: deps
	@if command -v $(VALGRIND) >/dev/null 2>&1 && \
	   echo '#include <valgrind/valgrind.h>' | $(CC) -E -x c - >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "valgrind: installing valgrind"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; \
	else \
	  echo "valgrind: valgrind (and valgrind/valgrind.h) missing; run as root:"; \
	  echo "  apt-get update && apt-get install -y valgrind"; exit 1; \
	fi

$(VG_PRELOAD): tests/valgrind-preload.c | $(B)
	$(CC) -shared -fPIC -O2 -pthread -o $@ $<

valgrind: valgrind-deps
	$(MAKE) lib tools $(TEST_BIN) $(VG_PRELOAD)
	@# Sticky and world-writable like /tmp: tests drop to user nobody.
	rm -rf $(VG_DIR) && mkdir -p $(VG_DIR) && chmod 1777 $(VG_DIR)
	@start=$$(date +%s); \
	LD_PRELOAD=$(abspath $(VG_PRELOAD)) SHMK_TEST_TIMEOUT_SCALE=10 SHMK_UNDER_VALGRIND=1 \
	  $(VALGRIND) $(VALGRIND_FLAGS) $(TEST_BIN) $(VG_CRITERION_ARGS); rc=$$?; \
	secs=$$(( $$(date +%s) - start )); \
	logs=$$(ls $(VG_DIR) | wc -l); \
	bad=$$(grep -l -e '$(VG_MARK)' $(VG_DIR)/*.log); \
	for f in $$bad; do \
	  echo "---- $$f"; \
	  sed -n '/$(VG_MARK)/,/@@shmk-vg-end@@/p' $$f | grep -v '@@shmk-vg-'; \
	done; \
	awk -v ours='$(notdir $(LIB_SRC) $(TEST_SRC) $(TEST_HLP))' \
	  -f tests/valgrind-fds.awk $(VG_DIR)/*.log; fds=$$?; \
	echo "valgrind: $$logs processes checked in $$secs s; logs in $(VG_DIR)"; \
	if [ -n "$$bad" ]; then \
	  echo "valgrind: errors in $$(echo $$bad | wc -w) process(es), above"; exit 1; fi; \
	if [ $$fds -ne 0 ]; then \
	  echo "valgrind: descriptors leaked by test processes, above"; exit 1; fi; \
	if [ $$rc -ne 0 ]; then echo "valgrind: the run failed (exit $$rc)"; exit 1; fi; \
	echo "valgrind: no errors"
