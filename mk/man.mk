# SPDX-License-Identifier: MIT
# man.mk - the manual pages (docs/*.[1-8]) say what the code does.
#
#   make mancheck   renders every page with man-db and groff, failing on any
#                   warning (man --warnings: groff's go to standard error);
#                   checks that every function of lib/shmkeeper.h has a page
#                   or a ".so" link page, with the header's prototype in its
#                   SYNOPSIS, that "man <function>" works once installed
#                   (make install into a scratch DESTDIR), and that every
#                   option a tool parses is in its --help and man page, with
#                   its exit codes (mk/mancheck.py says what exactly).
#
# A new function: name it in the NAME of its family's page, give its
# prototype in that page's SYNOPSIS, and write its link page with
#   python3 mk/mancheck.py --write-links .
# "make install" installs every docs/*.3 (link pages included), *.5, *.7.

MANCHECK_DIR := $(B)/mancheck

.PHONY: mancheck
mancheck: tools
	rm -rf $(MANCHECK_DIR)
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(MANCHECK_DIR) PREFIX=/usr >/dev/null
	$(PYTHON) mk/mancheck.py $(CURDIR) $(CURDIR)/$(B) $(CURDIR)/$(MANCHECK_DIR)/usr/share/man
	rm -rf $(MANCHECK_DIR)

CHECK_STEPS += mancheck
DEB_DEPS += man-db groff-base
