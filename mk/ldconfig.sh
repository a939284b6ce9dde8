#!/bin/sh
# SPDX-License-Identifier: MIT
# mk/ldconfig.sh install|uninstall LIBDIR SONAME - run by make install and
# make uninstall when DESTDIR is empty (a real install, not a staging one),
# so that a program finds SONAME without further ado, as after a package's
# install (and the linker's cache forgets it after an uninstall):
#
#  - LIBDIR is a directory the dynamic linker searches (ld.so.conf or a
#    trusted directory): as root, run ldconfig, which updates its cache;
#    otherwise say that root must run it;
#  - LIBDIR is not searched: one line on how programs will find the library
#    (a runpath, or LD_LIBRARY_PATH); uninstall says nothing.
#
# LDCONFIG names the program (default ldconfig, in /sbin for non-root
# users).  Exit status 0 unless ldconfig itself fails.
set -u
mode=$1
libdir=$2
soname=$3
PATH=$PATH:/sbin:/usr/sbin
ldconfig=${LDCONFIG:-ldconfig}

# ldconfig -v -N -X: print the directories it would scan ("DIR: (from
# FILE:LINE)"), build no cache, make no link.  Compared by inode: on a
# merged /usr, /usr/lib is scanned as /lib.
searched() {
	"$ldconfig" -v -N -X 2>/dev/null | sed -n 's/^\(\/[^:]*\):.*/\1/p' |
	while read -r d; do
		if [ "$d" -ef "$libdir" ]; then
			echo yes
			break
		fi
	done | grep -q yes
}

if searched; then
	if [ "$(id -u)" = 0 ]; then
		exec "$ldconfig"
	fi
	echo "$mode: $libdir is searched by the dynamic linker: run ldconfig as root to update its cache of $soname"
elif [ "$mode" = install ]; then
	echo "install: $libdir is not searched by the dynamic linker: link programs with -Wl,-rpath,$libdir (or run them with LD_LIBRARY_PATH=$libdir)"
fi
