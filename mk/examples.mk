# SPDX-License-Identifier: MIT
# examples/: small complete programs over the public header only, built as
# the tools are (build/include + the static library), and run by
# `make examplecheck` (part of make check): each must exit 0 and leave
# nothing in /dev/shm.  The README's API snippet is checked to be a verbatim
# excerpt of examples/service.c (the lines between its "[readme]" markers).

EXAMPLE_SRC := $(wildcard examples/*.c)
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(B)/examples/%)
EXAMPLE_PY  := $(wildcard examples/*.py)

.PHONY: examples examplecheck

examples: $(EXAMPLE_BIN)

$(B)/examples/%: examples/%.c examples/example.h $(AR_LIB) $(B)/include/shmkeeper.h
	@mkdir -p $(@D)
	@# As a user builds them: no -D_GNU_SOURCE, only the public header.
	$(CC) -std=gnu11 $(WARN) -pthread $(CFLAGS) -I$(B)/include -o $@ $< $(AR_LIB) $(LIB_LIBS)

# Each example runs in a registry directory and a namespace of its own;
# the claim binding the namespace to that registry (which the library keeps)
# is removed with the directory.  Then nothing of the namespace may be left.
EXAMPLE_TMP := $(CURDIR)/$(B)/examplecheck
examplecheck: examples lib
	@rm -rf $(EXAMPLE_TMP) && mkdir -p $(EXAMPLE_TMP)
	@set -e; uid=$$(id -u); \
	for ex in $(EXAMPLE_BIN) $(EXAMPLE_PY); do \
	  name=$$(basename $$ex .py); ns=ex-$$name-$$$$; dir=$(EXAMPLE_TMP)/$$name; \
	  echo "examplecheck: $$ex"; \
	  rc=0; SHMKEEPER_DIR=$$dir SHMKEEPER_NS=$$ns \
	    SHMKEEPER_LIB=$(CURDIR)/$(B)/$(SONAME) PYTHONPATH=$(CURDIR)/python \
	    PYTHONDONTWRITEBYTECODE=1 timeout 60 $$ex >$(EXAMPLE_TMP)/$$name.out 2>&1 || rc=$$?; \
	  sed 's/^/  | /' $(EXAMPLE_TMP)/$$name.out; \
	  rm -rf $$dir /dev/shm/.shmkeeper-claim.$$uid.$$ns; \
	  left=$$(ls -A /dev/shm | grep -F "$$ns." || true); \
	  if [ $$rc -ne 0 ]; then echo "examplecheck: $$ex exited $$rc"; exit 1; fi; \
	  if [ -n "$$left" ]; then echo "examplecheck: $$ex left in /dev/shm: $$left"; exit 1; fi; \
	done
	@sh examples/readme-check.sh README.md examples/service.c
	@echo "examplecheck: every example ran, left nothing; README snippet in sync"

CHECK_STEPS += examplecheck
