# SPDX-License-Identifier: MIT
# mk/build.mk - how the build itself is kept honest; included at the end of
# the Makefile.
#
#   make clangcheck    the library and tools built with clang, warnings as
#                      errors, into $(B)/clang (make check)
#   make licensecheck  every source file we own carries the SPDX line
#                      (make check; mk/spdx.sh --check; --fix adds it)
#   make abicheck      libshmkeeper.so exports exactly the functions of
#                      shmkeeper.h, each with its version of
#                      lib/shmkeeper.map (make check; mk/symbols.sh)
#
# Warnings: WERROR (empty by default: a user's or a release build must not
# fail on a warning a newer compiler invents) is -Werror for the goals of
# people changing the code: check, asan, test, and CI (.ci/run).  It is
# exported, so every sub-make of make check builds with it; and each build
# directory remembers the compiler and flags its objects were made with
# ($(B)/cflags), so that objects of a plain `make` are rebuilt by a later
# `make check`, which would otherwise let their warnings pass.

ifneq ($(filter check asan test,$(MAKECMDGOALS)),)
WERROR := -Werror
endif
export WERROR

# gcc's -Wformat-truncation (on with -Wall) guesses that some snprintf of a
# path into a fixed buffer may be cut; clang has no such warning and
# rejects the option.  Probed in its positive form: gcc takes any
# -Wno-<unknown> in silence.
WARN_CC := $(shell $(CC) -Werror -Wformat-truncation -x c -fsyntax-only /dev/null \
	     >/dev/null 2>&1 && echo -Wno-format-truncation)

# Rewritten only when the flags change: its date is what objects compare.
CFLAGS_STAMP := $(B)/cflags
CFLAGS_NOW    = $(subst ','\'',$(CC) $(ALL_CFLAGS))
$(CFLAGS_STAMP): FORCE
	@mkdir -p $(@D); \
	if [ "$$(cat $@ 2>/dev/null)" != '$(CFLAGS_NOW)' ]; then \
	  echo '$(CFLAGS_NOW)' > $@; fi
FORCE:
$(LIB_OBJ) $(FIU_OBJ) $(ASAN_OBJ) $(B)/lib/preload.o $(TOOL_BIN) $(TEST_BIN) \
  $(ASAN_TEST) $(TEST_PROGS) $(BENCH_BIN) $(REPLAY_OBJ) $(REPLAY_BIN): $(CFLAGS_STAMP)

.PHONY: clangcheck abicheck licensecheck symbolmap

# ---- clang -----------------------------------------------------------------
CLANG    ?= clang
DEB_DEPS += clang
clangcheck:
	$(MAKE) --no-print-directory B=$(B)/clang CC=$(CLANG) WERROR=-Werror lib tools
	$(B)/clang/tools/shmls --version >/dev/null
	@echo "clangcheck: $$($(CLANG) --version | head -n1): lib and tools build without a warning"

# ---- symbols -----------------------------------------------------------------
# The version script is checked against the header before the library is
# linked: a public function left out of it would be silently local.
$(SO): | symbolmap
symbolmap:
	@sh mk/symbols.sh map lib/shmkeeper.h lib/shmkeeper.map
# The package version, everywhere it is written (docs/VERSIONING.md).
VERSION_FOUND = \
	Makefile:$(VERSION) \
	lib/shmkeeper.h:$$(sed -n 's/^\#define SHMK_VERSION_STRING "\(.*\)"/\1/p' lib/shmkeeper.h) \
	lib/shmkeeper.h:$$(sed -n 's/^\#define SHMK_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$$/\2/p' lib/shmkeeper.h | paste -sd.) \
	python/setup.cfg:$$(sed -n 's/^version *= *//p' python/setup.cfg) \
	python/shmkeeper/__init__.py:$$(sed -n 's/^__version__ *= *"\(.*\)"/\1/p' python/shmkeeper/__init__.py)
abicheck: $(SO)
	sh mk/symbols.sh so lib/shmkeeper.h $(SO)
	@bad=0; for f in $(VERSION_FOUND); do \
	  if [ "$${f#*:}" != '$(VERSION)' ]; then echo "abicheck: $${f%%:*}: version '$${f#*:}', not $(VERSION)"; bad=1; fi; \
	done; exit $$bad
	@echo "abicheck: $(SO): $$(objdump -T $(SO) | grep -c ' SHMKEEPER_[0-9.]* shmk_') functions, all versioned"

# ---- licence -----------------------------------------------------------------
licensecheck:
	@sh mk/spdx.sh --check

CHECK_STEPS += licensecheck clangcheck abicheck
