# SPDX-License-Identifier: MIT
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
# Run by make install (no DESTDIR) as root when LIBDIR is searched by the
# dynamic linker: mk/ldconfig.sh.
LDCONFIG  ?= ldconfig
UNITDIR   ?= $(PREFIX)/lib/systemd/system
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
UNITS     := $(notdir $(basename $(wildcard tools/*.service.in)))
UNIT_SED   = sed 's|@BINDIR@|$(BINDIR)|g'
# The Python package (python/shmkeeper, pure Python): where Debian's
# python3 looks for it, /usr/lib/python3/dist-packages for PREFIX=/usr,
# else $(PREFIX)/lib/python3.X/dist-packages (on sys.path for /usr/local).
# (Asked of $(PYTHON) once, at first use: not on every make run.)
PYVER     = $(eval PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null))$(PYVER)
PYDIR     ?= $(if $(filter /usr,$(PREFIX)),/usr/lib/python3/dist-packages,$(PREFIX)/lib/python$(PYVER)/dist-packages)
PY_SRC    := $(wildcard python/shmkeeper/*.py)

CC        ?= cc
OPT       ?= -O2 -g
# Warnings are errors where we want them (make check, asan, test and CI set
# WERROR=-Werror: mk/build.mk), not in a user's or a release build, whose
# compiler may know warnings ours did not.  WARN_CC: flags of one compiler
# only (mk/build.mk).
WERROR    ?=
WARN       = -Wall -Wextra $(WERROR) -Wshadow -Wno-unused-parameter $(WARN_CC)
CFLAGS    ?= $(OPT)
ALL_CFLAGS = -std=gnu11 $(WARN) -D_GNU_SOURCE -pthread $(CFLAGS)
LIB_CFLAGS = $(ALL_CFLAGS) -fPIC -fvisibility=hidden -Ilib
LIB_LIBS   = -lcjson -lbsd -lm -pthread

B         ?= build
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
	  $(LDFLAGS) -o $@ $< $(TOOL_COMMON) $(AR_LIB) $(LIB_LIBS) -lm

$(B)/lib/%.o: lib/%.c $(LIB_HDR) | $(B)/lib
	$(CC) $(LIB_CFLAGS) -c -o $@ $<
$(B)/fiu/%.o: lib/%.c $(LIB_HDR) | $(B)/fiu
	$(CC) $(LIB_CFLAGS) -DFIU_ENABLE -c -o $@ $<
$(B)/asan/%.o: lib/%.c $(LIB_HDR) | $(B)/asan
	$(CC) $(LIB_CFLAGS) $(ASAN_FLAGS) -DFIU_ENABLE -c -o $@ $<

# Exports and their versions: lib/shmkeeper.map (docs/VERSIONING.md).
$(SO): $(LIB_OBJ) lib/shmkeeper.map
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=lib/shmkeeper.map \
	  $(LDFLAGS) -o $@ $(LIB_OBJ) $(LIB_LIBS)
	ln -sf libshmkeeper.so.$(VERSION) $(B)/$(SONAME)
	ln -sf $(SONAME) $(B)/libshmkeeper.so
$(AR_LIB): $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^
# The preload: the library's objects and lib/preload.c, exporting only the
# interposed functions (lib/preload.map).
$(B)/lib/preload.o: lib/preload.c $(LIB_HDR) | $(B)/lib
	$(CC) $(LIB_CFLAGS) -c -o $@ $<
$(PRELOAD): $(B)/lib/preload.o $(LIB_OBJ) lib/preload.map
	$(CC) -shared -Wl,--version-script=lib/preload.map -Wl,-z,nodelete $(LDFLAGS) -o $@ \
	  $(B)/lib/preload.o $(LIB_OBJ) $(LIB_LIBS) -ldl
$(FIU_LIB): $(FIU_OBJ)
	rm -f $@ && ar rcs $@ $^
$(ASAN_LIB): $(ASAN_OBJ)
	rm -f $@ && ar rcs $@ $^

# The .pc file names the install paths, so it is written at install time
# (and into build/ for inspection).  cJSON and libbsd are private to the
# library (shmkeeper.h includes neither): Libs.private only, for static
# links; as Requires.private their Cflags (cJSON's include directory) would
# be in every --cflags.  License: is read by SPDX tools (pkgconf's bomtool);
# pkg-config and pkgconf 1.8 ignore a field they do not know.
PC_TEXT = printf '%s\n' '\# SPDX-License-Identifier: MIT' \
	  'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$(INCDIR)' '' \
	  'Name: shmkeeper' 'Description: POSIX shared memory that cannot leak' \
	  'Version: $(VERSION)' 'License: MIT' 'Libs: -L$${libdir} -lshmkeeper' \
	  'Libs.private: -lcjson -lbsd -lm -pthread' \
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
# with pkg-config against the latter, as README says (a runpath; and
# statically), and run it without LD_LIBRARY_PATH; uninstall both and check
# nothing is left.
IC := $(CURDIR)/$(B)/installcheck
# A namespace of this run's: two checks at once on one host (each with its
# own registry) must not meet on one namespace's claim.
IC_NS := installcheck-$(shell od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
IC_PC = PKG_CONFIG_PATH=$(IC)/pfx/lib/pkgconfig
installcheck: lib tools
	rm -rf $(IC) && mkdir -p $(IC)
	$(MAKE) --no-print-directory install DESTDIR=$(IC)/stage PREFIX=/usr/local >/dev/null
	test -f $(IC)/stage/usr/local/include/shmkeeper.h && test -L $(IC)/stage/usr/local/lib/libshmkeeper.so
	test -f $(IC)/stage/usr/local/lib/shmkeeper/libshmkeeper-preload.so
	@# A directory the dynamic linker does not search: install says so.
	$(MAKE) --no-print-directory install PREFIX=$(IC)/pfx > $(IC)/install.log
	grep -q -e '-Wl,-rpath,$(IC)/pfx/lib ' $(IC)/install.log
	@# The public header needs no include directory of cJSON's or libbsd's.
	$(IC_PC) sh -c 'set -- $$(pkg-config --cflags shmkeeper); test "$$*" = "-I$(IC)/pfx/include"'
	$(IC_PC) sh -c '$(CC) -o $(IC)/prog tests/installcheck.c $$(pkg-config --cflags --libs shmkeeper) \
	  -Wl,-rpath,$$(pkg-config --variable=libdir shmkeeper)'
	env -u LD_LIBRARY_PATH $(IC)/prog $(IC)/registry $(IC_NS)
	@# Static: libshmkeeper.a (alone in the first -L directory) and what
	@# --static --libs adds; the program needs no libshmkeeper.so.
	mkdir $(IC)/static && ln -s $(IC)/pfx/lib/libshmkeeper.a $(IC)/static/
	$(IC_PC) sh -c '$(CC) -o $(IC)/prog-static tests/installcheck.c $$(pkg-config --cflags shmkeeper) \
	  -L$(IC)/static $$(pkg-config --static --libs shmkeeper)'
	! readelf -d $(IC)/prog-static | grep -q libshmkeeper
	env -u LD_LIBRARY_PATH $(IC)/prog-static $(IC)/registry $(IC_NS)
	@# A directory it searches (a stand-in ldconfig says so): install runs
	@# ldconfig as root, or says root must.
	printf '%s\n' '#!/bin/sh' 'if [ "$$1" = -v ]; then echo "$(IC)/pfx/lib: (from installcheck)";' \
	  'else echo "ran:$$*" >> $(IC)/ldconfig.ran; fi' > $(IC)/ldconfig && chmod +x $(IC)/ldconfig
	$(MAKE) --no-print-directory install PREFIX=$(IC)/pfx LDCONFIG=$(IC)/ldconfig > $(IC)/install.log
	if [ $$(id -u) = 0 ]; then test "$$(cat $(IC)/ldconfig.ran)" = "ran:"; \
	else grep -q 'run ldconfig as root' $(IC)/install.log; fi
	@# The Python package as installed finds the installed library.
	LD_LIBRARY_PATH=$(IC)/pfx/lib PYTHONPATH=$(IC)/pfx/lib/python$(PYVER)/dist-packages \
	  PYTHONDONTWRITEBYTECODE=1 $(PYTHON) -c 'import shmkeeper, sys; \
	  sys.exit(0 if shmkeeper.__file__.startswith("$(IC)/pfx/") else 1)'
	@# The registry and its claim on the namespace "installcheck" (which
	@# the library never removes) go: nothing of the run stays in /dev/shm.
	rm -rf $(IC)/registry /dev/shm/.shmkeeper-claim.$$(id -u).$(IC_NS)
	$(MAKE) --no-print-directory uninstall DESTDIR=$(IC)/stage PREFIX=/usr/local >/dev/null
	$(MAKE) --no-print-directory uninstall PREFIX=$(IC)/pfx LDCONFIG=$(IC)/ldconfig >/dev/null
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
	install -m 0644 $(wildcard docs/*.3) $(DESTDIR)$(MANDIR)/man3/
	$(if $(wildcard docs/*.5),install -d $(DESTDIR)$(MANDIR)/man5 && install -m 0644 $(wildcard docs/*.5) $(DESTDIR)$(MANDIR)/man5/)
	install -d $(DESTDIR)$(PYDIR)/shmkeeper
	install -m 0644 $(PY_SRC) $(DESTDIR)$(PYDIR)/shmkeeper/
	$(if $(DESTDIR),,@LDCONFIG='$(LDCONFIG)' sh mk/ldconfig.sh install '$(LIBDIR)' $(SONAME))

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libshmkeeper.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	  $(DESTDIR)$(LIBDIR)/libshmkeeper.so $(DESTDIR)$(LIBDIR)/libshmkeeper.a \
	  $(DESTDIR)$(INCDIR)/shmkeeper.h $(DESTDIR)$(PCDIR)/shmkeeper.pc \
	  $(patsubst docs/%,$(DESTDIR)$(MANDIR)/man3/%,$(wildcard docs/*.3)) \
	  $(patsubst docs/%,$(DESTDIR)$(MANDIR)/man5/%,$(wildcard docs/*.5)) \
	  $(DESTDIR)$(PRELOADDIR)/libshmkeeper-preload.so $(MAN7:docs/%=$(DESTDIR)$(MANDIR)/man7/%) \
	  $(TOOLS:%=$(DESTDIR)$(BINDIR)/%) $(MAN1:docs/%=$(DESTDIR)$(MANDIR)/man1/%) \
	  $(UNITS:%=$(DESTDIR)$(UNITDIR)/%) $(DESTDIR)$(TMPFILESDIR)/shmkeeper.conf \
	  $(PY_SRC:python/%=$(DESTDIR)$(PYDIR)/%)
	rm -rf $(DESTDIR)$(PYDIR)/shmkeeper/__pycache__
	rmdir $(DESTDIR)$(PYDIR)/shmkeeper 2>/dev/null || true
	$(if $(DESTDIR),,@LDCONFIG='$(LDCONFIG)' sh mk/ldconfig.sh uninstall '$(LIBDIR)' $(SONAME))

clean:
	rm -rf $(B)
# Further checks live beside what they check, each in a make fragment that
# appends its target to CHECK_STEPS (run last by make check) and its Debian
# packages to DEB_DEPS.
CHECK_STEPS :=
-include tests/fuzz/fuzz.mk
-include tests/valgrind.mk
-include $(sort $(wildcard mk/*.mk))
