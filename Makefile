# shmkeeper - POSIX shared memory that cannot leak.
#
#   make            library (shared + static) and tools
#   make check      install missing Debian build deps, build, run the tests
#                   (the C suite, then the Python package's: make pycheck)
#   make asan       the tests under AddressSanitizer + UBSan
#   make fuzz       libFuzzer targets for a bounded time (tests/fuzz/fuzz.mk);
#                   make check replays their corpus and every crash found
#   make valgrind   the whole suite under valgrind memcheck (tests/valgrind.mk)
#   make soak       leak-soak, the main job, with its defaults
#   make bench      benchmarks, as ratios to the bare syscalls
#   make install    PREFIX=/usr/local DESTDIR= honoured; make uninstall
#
# Libraries are built twice: the release objects (no failpoints: libfiu's
# macros compile to nothing) and the test objects (-DFIU_ENABLE), which only
# the test programs link.

VERSION   := 0.1.0
SOMAJOR   := 0
PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
LIBDIR    ?= $(PREFIX)/lib
INCDIR    ?= $(PREFIX)/include
MANDIR    ?= $(PREFIX)/share/man
# libshmkeeper-preload.so is not a library to link with: it has a
# directory of its own (shmrun runs programs with LD_PRELOAD=$(PRELOADDIR)/...).
PRELOADDIR ?= $(LIBDIR)/shmkeeper
PCDIR     ?= $(LIBDIR)/pkgconfig
UNITDIR   ?= $(PREFIX)/lib/systemd/system
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
UNITS     := $(notdir $(basename $(wildcard tools/*.service.in)))
UNIT_SED   = sed 's|@BINDIR@|$(BINDIR)|g'

CC        ?= cc
OPT       ?= -O2 -g
WARN      := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-format-truncation
CFLAGS    ?= $(OPT)
ALL_CFLAGS = -std=gnu11 $(WARN) -D_GNU_SOURCE -pthread $(CFLAGS)
LIB_CFLAGS = $(ALL_CFLAGS) -fPIC -fvisibility=hidden -Ilib
LIB_LIBS   = -lcjson -lbsd -lm -pthread

B         := build
# lib/preload.c is the preload library's own (it defines shm_open...),
# never part of libshmkeeper.
LIB_SRC   := $(filter-out lib/preload.c,$(wildcard lib/*.c))
LIB_HDR   := $(wildcard lib/*.h)
LIB_OBJ   := $(LIB_SRC:lib/%.c=$(B)/lib/%.o)
FIU_OBJ   := $(LIB_SRC:lib/%.c=$(B)/fiu/%.o)
ASAN_OBJ  := $(LIB_SRC:lib/%.c=$(B)/asan/%.o)
SO        := $(B)/libshmkeeper.so.$(VERSION)
SONAME    := libshmkeeper.so.$(SOMAJOR)
AR_LIB    := $(B)/libshmkeeper.a
PRELOAD   := $(B)/libshmkeeper-preload.so
FIU_LIB   := $(B)/libshmkeeper-fiu.a
ASAN_LIB  := $(B)/libshmkeeper-asan.a

TEST_SRC  := $(wildcard tests/test_*.c)
TEST_HLP  := tests/helpers.c
TEST_BIN  := $(B)/shmk-tests
ASAN_TEST := $(B)/shmk-tests-asan
TOOLS     := $(basename $(notdir $(filter-out tools/common.c,$(wildcard tools/*.c))))
TOOL_BIN  := $(TOOLS:%=$(B)/tools/%)
TOOL_COMMON := $(wildcard tools/common.c)
MAN1      := $(wildcard docs/*.1)
MAN7      := $(wildcard docs/*.7)
# Programs the tests run (under the preload, among others).
TEST_PROGS := $(patsubst tests/prog_%.c,$(B)/tests/prog_%,$(wildcard tests/prog_*.c))
BENCH_SRC := $(wildcard tests/bench/*.c)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(B)/bench/%)

ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
TEST_JOBS ?= 4
# Criterion runs each test in its own process; --jobs runs them in parallel.
CRITERION_ARGS ?= --jobs=$(TEST_JOBS) --timeout=120

DEB_DEPS  := libcjson-dev libbsd-dev libcriterion-dev libfiu-dev pkg-config \
	     python3 python3-pytest python3-setuptools python3-pip python3-wheel

# The Python package (python/) is tested with Debian's interpreter, which is
# the one python3-pytest and python3-setuptools install for.
PYTHON    ?= /usr/bin/python3

.PHONY: all lib tools installcheck check pycheck soak test asan bench deps install uninstall clean

all: lib tools

lib: $(SO) $(AR_LIB) $(PRELOAD) $(B)/shmkeeper.pc

tools: $(TOOL_BIN) $(UNITS:%=$(B)/%)

# Tools link the static library: they run before any install.  They see
# only the public header, as any other program would: what they need the
# library must offer to everyone.
$(B)/include/shmkeeper.h: lib/shmkeeper.h
	@mkdir -p $(@D)
	cp $< $@
$(B)/tools/%: tools/%.c $(TOOL_COMMON) $(wildcard tools/*.h) $(AR_LIB) $(B)/include/shmkeeper.h | $(B)/tools
	$(CC) $(ALL_CFLAGS) -I$(B)/include -Itools -DSHMK_TOOL_VERSION='"$(VERSION)"' \
	  -DSHMK_PRELOAD_PATH='"$(PRELOADDIR)/libshmkeeper-preload.so"' \
	  -o $@ $< $(TOOL_COMMON) $(AR_LIB) $(LIB_LIBS) -lm

$(B)/lib/%.o: lib/%.c $(LIB_HDR) | $(B)/lib
	$(CC) $(LIB_CFLAGS) -c -o $@ $<
$(B)/fiu/%.o: lib/%.c $(LIB_HDR) | $(B)/fiu
	$(CC) $(LIB_CFLAGS) -DFIU_ENABLE -c -o $@ $<
$(B)/asan/%.o: lib/%.c $(LIB_HDR) | $(B)/asan
	$(CC) $(LIB_CFLAGS) $(ASAN_FLAGS) -DFIU_ENABLE -c -o $@ $<

$(SO): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(LIB_LIBS)
	ln -sf libshmkeeper.so.$(VERSION) $(B)/$(SONAME)
	ln -sf $(SONAME) $(B)/libshmkeeper.so
$(AR_LIB): $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^
# The preload: the library's objects and lib/preload.c, exporting only the
# interposed functions (lib/preload.map).
$(B)/lib/preload.o: lib/preload.c $(LIB_HDR) | $(B)/lib
	$(CC) $(LIB_CFLAGS) -c -o $@ $<
$(PRELOAD): $(B)/lib/preload.o $(LIB_OBJ) lib/preload.map
	$(CC) -shared -Wl,--version-script=lib/preload.map -Wl,-z,nodelete -o $@ \
	  $(B)/lib/preload.o $(LIB_OBJ) $(LIB_LIBS) -ldl
$(FIU_LIB): $(FIU_OBJ)
	rm -f $@ && ar rcs $@ $^
$(ASAN_LIB): $(ASAN_OBJ)
	rm -f $@ && ar rcs $@ $^

# The .pc file names the install paths, so it is written at install time
# (and into build/ for inspection).
PC_TEXT = printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$(INCDIR)' '' \
	  'Name: shmkeeper' 'Description: POSIX shared memory that cannot leak' \
	  'Version: $(VERSION)' 'Libs: -L$${libdir} -lshmkeeper' \
	  'Libs.private: -lcjson -lbsd -lm -pthread' 'Requires.private: libcjson libbsd' \
	  'Cflags: -I$${includedir}'
$(B)/shmkeeper.pc: Makefile | $(B)
	$(PC_TEXT) > $@

# systemd units name the tools' install path, so they too are written at
# install time from tools/*.service.in (and into build/ for inspection).
$(B)/%.service: tools/%.service.in Makefile | $(B)
	$(UNIT_SED) $< > $@

$(B) $(B)/lib $(B)/fiu $(B)/asan $(B)/bench $(B)/tools $(B)/tests:
	mkdir -p $@

# ---- tests -----------------------------------------------------------------
TEST_CFLAGS = $(ALL_CFLAGS) -Ilib -Itests -DFIU_ENABLE -DSHMK_SRCDIR='"$(CURDIR)"' -DSHMK_BUILDDIR='"$(CURDIR)/$(B)"'
TEST_LIBS   = -lcriterion -lfiu -lcjson -lbsd -lm -pthread

$(TEST_BIN): $(TEST_SRC) $(TEST_HLP) tests/helpers.h $(FIU_LIB) $(TEST_PROGS) $(PRELOAD) | $(B)
	$(CC) $(TEST_CFLAGS) -o $@ $(TEST_SRC) $(TEST_HLP) $(FIU_LIB) $(TEST_LIBS)
$(ASAN_TEST): $(TEST_SRC) $(TEST_HLP) tests/helpers.h $(ASAN_LIB) $(TEST_PROGS) $(PRELOAD) | $(B)
	$(CC) $(TEST_CFLAGS) $(ASAN_FLAGS) -o $@ $(TEST_SRC) $(TEST_HLP) $(ASAN_LIB) $(TEST_LIBS)
# Plain programs, linked with nothing of ours: what the preload is for.
$(B)/tests/prog_%: tests/prog_%.c | $(B)/tests
	$(CC) $(ALL_CFLAGS) -o $@ $< -pthread

deps:
	@missing=""; \
	if command -v dpkg >/dev/null 2>&1; then \
	  for p in $(DEB_DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	else echo "deps: not a Debian system; assuming $(DEB_DEPS) or equivalents are installed"; fi; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "deps: installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing; \
	  else \
	    echo "deps: missing$$missing; run as root:"; \
	    echo "  apt-get update && apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

test: $(TEST_BIN)
	$(TEST_BIN) $(CRITERION_ARGS)

check: deps
	$(MAKE) lib tools $(TEST_BIN)
	$(TEST_BIN) $(CRITERION_ARGS)
	$(MAKE) --no-print-directory fuzz-replay
	$(MAKE) installcheck
	$(MAKE) --no-print-directory pycheck
	$(if $(strip $(CHECK_STEPS)),$(MAKE) --no-print-directory $(CHECK_STEPS))

# The Python package's tests (pytest) against the library just built; each
# test has its own registry directory and namespace.  Nothing is written
# into the source tree (no bytecode, no pytest cache).
pycheck: lib
	SHMKEEPER_LIB=$(CURDIR)/$(B)/$(SONAME) PYTHONDONTWRITEBYTECODE=1 \
	  $(PYTHON) -m pytest -q -p no:cacheprovider python/tests

# Install into a staging DESTDIR and into a real PREFIX; build a program
# with pkg-config against the latter and run it; uninstall both and check
# nothing is left.
IC := $(CURDIR)/$(B)/installcheck
installcheck: lib tools
	rm -rf $(IC) && mkdir -p $(IC)
	$(MAKE) --no-print-directory install DESTDIR=$(IC)/stage PREFIX=/usr/local >/dev/null
	test -f $(IC)/stage/usr/local/include/shmkeeper.h && test -L $(IC)/stage/usr/local/lib/libshmkeeper.so
	test -f $(IC)/stage/usr/local/lib/shmkeeper/libshmkeeper-preload.so
	$(MAKE) --no-print-directory install PREFIX=$(IC)/pfx >/dev/null
	PKG_CONFIG_PATH=$(IC)/pfx/lib/pkgconfig \
	  sh -c '$(CC) -o $(IC)/prog tests/installcheck.c $$(pkg-config --cflags --libs shmkeeper)'
	LD_LIBRARY_PATH=$(IC)/pfx/lib $(IC)/prog $(IC)/registry
	@# The registry and its claim on the namespace "installcheck" (which
	@# the library never removes) go: nothing of the run stays in /dev/shm.
	rm -rf $(IC)/registry /dev/shm/.shmkeeper-claim.$$(id -u).installcheck
	$(MAKE) --no-print-directory uninstall DESTDIR=$(IC)/stage PREFIX=/usr/local >/dev/null
	$(MAKE) --no-print-directory uninstall PREFIX=$(IC)/pfx >/dev/null
	@left=$$(find $(IC)/stage $(IC)/pfx -type f -o -type l); \
	if [ -n "$$left" ]; then echo "installcheck: uninstall left: $$left"; exit 1; fi
	@echo "installcheck: install, pkg-config build, run and uninstall OK"


asan: deps
	$(MAKE) tools $(ASAN_TEST)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  $(ASAN_TEST) $(CRITERION_ARGS)

# ---- the main job ---------------------------------------------------------------
# leak-soak with its defaults (50 cycles, 3 workers, 3 x 1 MiB) on the default
# registry directory; SOAK_ARGS adds options, e.g. SOAK_ARGS='--cycles 10000'.
SOAK_ARGS ?=
soak: deps
	$(MAKE) --no-print-directory lib tools
	@# The run leaves its namespace empty (it fails otherwise); the claim
	@# binding it to the registry goes too, as the library never removes it.
	$(B)/tools/leak-soak $(SOAK_ARGS); rc=$$?; \
	  rm -f /dev/shm/.shmkeeper-claim.$$(id -u).leaksoak; exit $$rc

# ---- benchmarks ---------------------------------------------------------------
$(B)/bench/%: tests/bench/%.c $(wildcard tests/bench/*.h) $(AR_LIB) | $(B)/bench
	$(CC) $(ALL_CFLAGS) -O2 -Ilib -Itests/bench -o $@ $< $(AR_LIB) $(LIB_LIBS) -lm

# bench_preload runs itself under the preload.
$(B)/bench/bench_preload: $(PRELOAD)

bench: deps
	$(MAKE) $(BENCH_BIN)
	@for b in $(BENCH_BIN); do $$b || exit 1; done

# ---- install ----------------------------------------------------------------
install: lib tools
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(PCDIR) $(DESTDIR)$(BINDIR)
	install -m 0755 $(TOOL_BIN) $(DESTDIR)$(BINDIR)/
	install -d $(DESTDIR)$(MANDIR)/man1
	$(if $(MAN1),install -m 0644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/)
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(TMPFILESDIR)
	$(foreach u,$(UNITS),$(UNIT_SED) tools/$(u).in > $(DESTDIR)$(UNITDIR)/$(u) && chmod 0644 $(DESTDIR)$(UNITDIR)/$(u) &&) true
	install -m 0644 tools/shmkeeper.tmpfiles $(DESTDIR)$(TMPFILESDIR)/shmkeeper.conf
	install -m 0755 $(SO) $(DESTDIR)$(LIBDIR)/
	install -d $(DESTDIR)$(PRELOADDIR)
	install -m 0644 $(PRELOAD) $(DESTDIR)$(PRELOADDIR)/
	$(if $(MAN7),install -d $(DESTDIR)$(MANDIR)/man7 && install -m 0644 $(MAN7) $(DESTDIR)$(MANDIR)/man7/)
	ln -sf libshmkeeper.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libshmkeeper.so
	install -m 0644 $(AR_LIB) $(DESTDIR)$(LIBDIR)/
	install -m 0644 lib/shmkeeper.h $(DESTDIR)$(INCDIR)/
	$(PC_TEXT) > $(DESTDIR)$(PCDIR)/shmkeeper.pc
	install -d $(DESTDIR)$(MANDIR)/man3
	install -m 0644 docs/shmkeeper.3 $(DESTDIR)$(MANDIR)/man3/

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libshmkeeper.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	  $(DESTDIR)$(LIBDIR)/libshmkeeper.so $(DESTDIR)$(LIBDIR)/libshmkeeper.a \
	  $(DESTDIR)$(INCDIR)/shmkeeper.h $(DESTDIR)$(PCDIR)/shmkeeper.pc \
	  $(DESTDIR)$(MANDIR)/man3/shmkeeper.3 \
	  $(DESTDIR)$(PRELOADDIR)/libshmkeeper-preload.so $(MAN7:docs/%=$(DESTDIR)$(MANDIR)/man7/%) \
	  $(TOOLS:%=$(DESTDIR)$(BINDIR)/%) $(MAN1:docs/%=$(DESTDIR)$(MANDIR)/man1/%) \
	  $(UNITS:%=$(DESTDIR)$(UNITDIR)/%) $(DESTDIR)$(TMPFILESDIR)/shmkeeper.conf

clean:
	rm -rf $(B)
# Further checks live beside what they check, each in a make fragment that
# appends its target to CHECK_STEPS (run last by make check) and its Debian
# packages to DEB_DEPS.
CHECK_STEPS :=
-include tests/fuzz/fuzz.mk
-include tests/valgrind.mk
-include $(sort $(wildcard mk/*.mk))
