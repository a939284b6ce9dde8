# SPDX-License-Identifier: MIT
# tests/fuzz/fuzz.mk - fuzz targets; included at the end of the Makefile.
#
#   make fuzz           build the libFuzzer targets with clang and run each
#                       for FUZZ_SECONDS (default 60) on a working copy of
#                       the corpus in $(B)/fuzz/; fails if anything crashed,
#                       naming the files in $(B)/fuzz/crashes-<target>/
#   make fuzz-merge     merge what the runs found into the committed corpus
#                       (tests/fuzz/corpus/<target>/), keeping only inputs
#                       that add coverage
#   make fuzz-replay    no libFuzzer: every committed corpus and crash input
#                       through the targets, built with gcc and ASan+UBSan
#                       against the release-style library (make check)
#
# Targets: every tests/fuzz/fuzz_<target>.c (FUZZ_TARGETS to choose some).
# Seeds: tests/fuzz/corpus/<target>/ (record: the fixtures of registry/).
# Inputs that ever made a target fail: tests/fuzz/crashes/<target>/,
# replayed by fuzz-replay and read by every run.  Variables: FUZZ_SECONDS,
# FUZZ_TARGETS, FUZZ_CC, FUZZ_MAX_LEN, FUZZ_FLAGS (more libFuzzer options,
# e.g. FUZZ_FLAGS=-use_value_profile=1).

FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_FLAGS   ?=
FUZZ_MAX_LEN ?= 8192
FUZZ_SRCDIR  := tests/fuzz
# Every tests/fuzz/fuzz_<target>.c.  Its seeds: corpus/$(FUZZ_SEEDS_<target>),
# by default corpus/<target>/; its crash inputs: crashes/<target>/.
FUZZ_TARGETS ?= $(patsubst $(FUZZ_SRCDIR)/fuzz_%.c,%,$(wildcard $(FUZZ_SRCDIR)/fuzz_*.c))
FUZZ_SEEDS_record_fast := record
fuzz_seeds = $(FUZZ_SRCDIR)/corpus/$(or $(FUZZ_SEEDS_$(1)),$(1))
# The committed directories a target reads (those that exist).
fuzz_dirs = $(wildcard $(call fuzz_seeds,$(1)) $(FUZZ_SRCDIR)/crashes/$(1))
FUZZ_DIR      = $(B)/fuzz
FUZZ_CFLAGS  := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-fno-omit-frame-pointer -D_GNU_SOURCE -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Ilib
# clang's libFuzzer runtime is in Debian's libclang-rt-<clang major>-dev.
FUZZ_CLANG_MAJOR = $(or $(shell $(FUZZ_CC) --version 2>/dev/null | sed -n 's/.*clang version \([0-9][0-9]*\).*/\1/p' | head -n1),14)
FUZZ_DEB_DEPS    = clang libclang-rt-$(FUZZ_CLANG_MAJOR)-dev
FUZZ_ASAN_OPTIONS = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1 \
		    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

FUZZ_BIN      = $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)
REPLAY_DIR    = $(B)/fuzz-replay
REPLAY_OBJ    = $(LIB_SRC:lib/%.c=$(REPLAY_DIR)/lib/%.o)
REPLAY_LIB    = $(REPLAY_DIR)/libshmkeeper-fuzz.a
REPLAY_BIN    = $(FUZZ_TARGETS:%=$(REPLAY_DIR)/replay-%)

.PHONY: fuzz fuzz-build fuzz-deps fuzz-merge fuzz-replay $(FUZZ_TARGETS:%=fuzz-run-%)

# The Debian packages of deps plus clang and its libFuzzer runtime (root
# installs them with apt-get, others are told what to install).
fuzz-deps:
	@$(MAKE) --no-print-directory deps DEB_DEPS="$(DEB_DEPS) $(FUZZ_DEB_DEPS)"

# The library's sources are compiled into each target, so they get the
# fuzzer's coverage instrumentation and the sanitizers (libcjson does not).
$(FUZZ_DIR)/fuzz_%: $(FUZZ_SRCDIR)/fuzz_%.c $(LIB_SRC) $(LIB_HDR) | $(FUZZ_DIR)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(LIB_SRC) $(LIB_LIBS)

fuzz-build: fuzz-deps
	@$(MAKE) --no-print-directory $(FUZZ_BIN)

# One run per target: new inputs go to the working corpus (the first
# directory); the committed corpus and crash inputs are read, never written.
fuzz: fuzz-build
	@rc=0; for t in $(FUZZ_TARGETS); do \
	  $(MAKE) --no-print-directory fuzz-run-$$t || rc=1; \
	done; \
	if [ $$rc != 0 ]; then \
	  echo "fuzz: FAILED; the inputs are in:"; \
	  found=$$(for t in $(FUZZ_TARGETS); do \
	    ls -d $(CURDIR)/$(FUZZ_DIR)/crashes-$$t/* 2>/dev/null; done); \
	  echo "$${found:-  (none: interrupted, or see $(FUZZ_DIR)/fuzz-<target>.log)}"; \
	  echo "fuzz: keep each in tests/fuzz/crashes/<target>/ (replayed by make check)"; \
	  exit 1; \
	fi; \
	echo "fuzz: $(FUZZ_TARGETS): $(FUZZ_SECONDS) s each, no crash"

$(FUZZ_TARGETS:%=fuzz-run-%): fuzz-run-%: $(FUZZ_DIR)/fuzz_%
	@mkdir -p $(FUZZ_DIR)/corpus-$* $(FUZZ_DIR)/crashes-$*
	@echo "fuzz: $*: $(FUZZ_SECONDS) s, working corpus $(FUZZ_DIR)/corpus-$*"
	@rm -f $(FUZZ_DIR)/fuzz-$*.rc
	@{ $(FUZZ_ASAN_OPTIONS) $(FUZZ_DIR)/fuzz_$* -max_total_time=$(FUZZ_SECONDS) \
	  -timeout=10 -max_len=$(FUZZ_MAX_LEN) -dict=$(FUZZ_SRCDIR)/record.dict \
	  -artifact_prefix=$(FUZZ_DIR)/crashes-$*/ -print_final_stats=1 $(FUZZ_FLAGS) \
	  $(FUZZ_DIR)/corpus-$* $(call fuzz_dirs,$*) 2>&1; \
	  echo $$? > $(FUZZ_DIR)/fuzz-$*.rc; } | tee $(FUZZ_DIR)/fuzz-$*.log | \
	  grep -v '^#[0-9]*[[:space:]]*\(NEW\|REDUCE\|pulse\)' || true
	@rc=$$(cat $(FUZZ_DIR)/fuzz-$*.rc); \
	if [ "$$rc" != 0 ]; then echo "fuzz: $*: FAILED (exit $$rc), log $(FUZZ_DIR)/fuzz-$*.log"; exit 1; fi

# Adds to the committed corpus only the inputs of the working corpus that
# reach new coverage (libFuzzer -merge=1).  Review and commit the result.
fuzz-merge: fuzz-build
	@$(foreach t,$(FUZZ_TARGETS),\
	  mkdir -p $(FUZZ_DIR)/corpus-$(t) $(call fuzz_seeds,$(t)) && \
	  before=$$(ls $(call fuzz_seeds,$(t)) | wc -l) && \
	  { $(FUZZ_DIR)/fuzz_$(t) -merge=1 -max_len=$(FUZZ_MAX_LEN) \
	    $(call fuzz_seeds,$(t)) $(FUZZ_DIR)/corpus-$(t) 2>$(FUZZ_DIR)/merge-$(t).log \
	    || { cat $(FUZZ_DIR)/merge-$(t).log; exit 1; }; } && \
	  echo "fuzz-merge: $(t): $(call fuzz_seeds,$(t)): $$before -> $$(ls $(call fuzz_seeds,$(t)) | wc -l) inputs" && ) true

# ---- replay (no clang needed) ------------------------------------------------
# Release-style objects (no -DFIU_ENABLE) with ASan and UBSan; -O1 (after
# CFLAGS' -O2) because make check builds them and the inputs are few.
REPLAY_OPT ?= -O1
$(REPLAY_DIR)/lib/%.o: lib/%.c $(LIB_HDR) | $(REPLAY_DIR)/lib
	$(CC) $(LIB_CFLAGS) $(ASAN_FLAGS) $(REPLAY_OPT) -c -o $@ $<
$(REPLAY_LIB): $(REPLAY_OBJ)
	rm -f $@ && ar rcs $@ $^
$(REPLAY_DIR)/replay-%: $(FUZZ_SRCDIR)/replay.c $(FUZZ_SRCDIR)/fuzz_%.c $(REPLAY_LIB) | $(REPLAY_DIR)
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) $(REPLAY_OPT) -Ilib -o $@ $(FUZZ_SRCDIR)/replay.c $(FUZZ_SRCDIR)/fuzz_$*.c $(REPLAY_LIB) $(LIB_LIBS)

fuzz-replay: deps
	@$(MAKE) --no-print-directory $(REPLAY_BIN)
	@rc=0; $(foreach t,$(FUZZ_TARGETS),\
	  $(FUZZ_ASAN_OPTIONS) $(REPLAY_DIR)/replay-$(t) $(call fuzz_dirs,$(t)) || rc=1;) \
	exit $$rc

$(FUZZ_DIR) $(REPLAY_DIR) $(REPLAY_DIR)/lib:
	mkdir -p $@
