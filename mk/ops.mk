# SPDX-License-Identifier: MIT
# mk/ops.mk - what an operator installs and reads: the systemd unit and the
# tmpfiles.d entry (unitcheck), the OpenMetrics output (metricscheck).

CHECK_STEPS += unitcheck
DEB_DEPS += systemd man-db

# ---- unitcheck ---------------------------------------------------------------
# For two PREFIXes, install into a DESTDIR stage and check what was
# installed there, as a package would ship it:
#  - systemd-analyze verify --root=STAGE: the unit parses without a single
#    warning (an unknown or mistyped setting is only a warning to systemd,
#    so any output fails), ExecStart names an executable inside the stage
#    (the path filled in for that PREFIX), and Documentation=man:shmclean(1)
#    opens from the staged manual;
#  - systemd-analyze security --offline: exposure at most UNIT_MAX_EXPOSURE
#    (tenths: 20 is 2.0);
#  - systemd-tmpfiles --create --root: the entry makes /run/shmkeeper 0700
#    root in a scratch root.
# Needs no running systemd (containers and CI have none as PID 1).
UNIT_MAX_EXPOSURE ?= 20
UC := $(CURDIR)/$(B)/unitcheck
unitcheck: lib tools
	rm -rf $(UC)
	@set -e; for pfx in /usr /usr/local; do \
	  st=$(UC)/stage$$(echo $$pfx | tr / _); \
	  $(MAKE) --no-print-directory install DESTDIR=$$st PREFIX=$$pfx >/dev/null; \
	  for u in $(UNITS); do \
	    f=$$st$$pfx/lib/systemd/system/$$u; \
	    grep -qx "ExecStart=$$pfx/bin/[^ ]*.*" $$f || \
	      { echo "unitcheck: $$f: ExecStart is not in $$pfx/bin"; exit 1; }; \
	    MANPATH=$$st$$pfx/share/man systemd-analyze verify --root=$$st $$f \
	      >$(UC)/verify.out 2>&1 || true; \
	    if [ -s $(UC)/verify.out ]; then \
	      echo "unitcheck: systemd-analyze verify $$f:"; cat $(UC)/verify.out; exit 1; fi; \
	    systemd-analyze security --offline=true --root=$$st \
	      --threshold=$(UNIT_MAX_EXPOSURE) $$f >$(UC)/security.out 2>&1 || \
	      { cat $(UC)/security.out; \
	        echo "unitcheck: $$f: exposure above $(UNIT_MAX_EXPOSURE)/10"; exit 1; }; \
	    echo "unitcheck: PREFIX=$$pfx $$u: verify clean, $$(grep -o 'exposure level for [^ ]*: [0-9.]* [A-Z]*' $(UC)/security.out)"; \
	  done; \
	  tf=$$st$$pfx/lib/tmpfiles.d/shmkeeper.conf; \
	  systemd-tmpfiles --create --root=$(UC)/root$$(echo $$pfx | tr / _) $$tf; \
	  test "$$(stat -c '%F %a %U' $(UC)/root$$(echo $$pfx | tr / _)/run/shmkeeper)" = "directory 700 root" || \
	    { echo "unitcheck: $$tf does not make /run/shmkeeper 0700 root"; exit 1; }; \
	done
	@echo "unitcheck: units and tmpfiles.d entry OK for PREFIX=/usr and /usr/local"

# ---- metricscheck ------------------------------------------------------------
# shmls and shmclean --openmetrics on a registry with every figure, read by
# promtool check metrics (Debian prometheus: the server is installed but
# not started - apt's policy-rc.d forbids it in containers, and nothing here
# asks for it) and by a strict OpenMetrics parser (python3-prometheus-client).
CHECK_STEPS += metricscheck
DEB_DEPS += prometheus python3-prometheus-client
metricscheck: lib tools
	sh tests/metricscheck.sh $(CURDIR)/$(B) $(CURDIR) $(PYTHON)
