# SPDX-License-Identifier: MIT
# mk/deb.mk - make deb: the Debian packages of debian/ (libshmkeeper0,
# libshmkeeper-dev, shmkeeper-tools, python3-shmkeeper), built with
# dpkg-buildpackage from a clean copy of the tree, checked by lintian (no
# errors; its warnings are shown), then extracted into a scratch root
# where tests/deb-installcheck.sh runs tests/installcheck.c, the tools and
# the Python package against them.  Everything is in $(B)/deb: the .debs,
# the .changes, build.log, root/.  Costs about 50 s of CPU (the build 35,
# lintian 15).

DEB_DEPS    += build-essential debhelper dh-python dpkg-dev fakeroot lintian python3-all
CHECK_STEPS += deb

DEB_OUT  := $(CURDIR)/$(B)/deb
DEB_JOBS ?= 2

.PHONY: deb
deb: deps
	rm -rf $(DEB_OUT) && mkdir -p $(DEB_OUT)/src
	@# The tree as git knows it (tracked and new files, not what
	@# .gitignore names, so not build/); outside git, all but build/.
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  git ls-files -z --cached --others --exclude-standard; \
	else find . -path ./$(B) -prune -o -type f -print0; fi | \
	  tar --null -T - --ignore-failed-read -cf - | tar -xf - -C $(DEB_OUT)/src
	@# No tests in the build (debian/rules says why), no -dbgsym packages
	@# and no pre-clean of the fresh copy, to keep this fast; the log is
	@# shown when it fails.
	cd $(DEB_OUT)/src && DEB_BUILD_OPTIONS="parallel=$(DEB_JOBS) nocheck noautodbgsym" \
	  dpkg-buildpackage -us -uc -b --no-pre-clean >$(DEB_OUT)/build.log 2>&1 || \
	  { tail -n 80 $(DEB_OUT)/build.log; echo "deb: dpkg-buildpackage failed, see $(DEB_OUT)/build.log"; exit 1; }
	lintian --fail-on error $(DEB_OUT)/*.changes
	CC="$(CC)" PYTHON="$(PYTHON)" tests/deb-installcheck.sh $(DEB_OUT) $(VERSION)
	@echo "deb: $$(cd $(DEB_OUT) && ls *.deb | tr '\n' ' ')built, lintian-clean of errors, installed in a scratch root and run"
