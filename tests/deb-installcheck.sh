#!/bin/sh
# SPDX-License-Identifier: MIT
# deb-installcheck.sh OUT VERSION - run by "make deb" on the Debian packages
# it built into OUT: they are installed in a scratch root, OUT/root (dpkg
# -x: no maintainer script runs), where a program built against
# libshmkeeper-dev runs on libshmkeeper0, the tools are the release's and
# find what they name, and python3-shmkeeper imports and loads the library
# by its soname.  CC and PYTHON are honoured.  Nothing stays in /dev/shm.
set -eu
out=$1 version=$2
CC=${CC:-cc} PYTHON=${PYTHON:-python3}
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
root=$out/root work=$out
libdir=$root/usr/lib/$triplet
uid=$(id -u)
src=$(cd "$(dirname "$0")" && pwd)

rm -rf "$root"
for deb in "$out"/*.deb; do
	case $deb in *-dbgsym_*) continue ;; esac
	dpkg -x "$deb" "$root"
done

# Namespaces of this run's: two checks at once on one host must not meet
# on one namespace's claim.
ns_c=debic-$$
ns_py=debpy-$$

cleanup() {
	# The registries and the claims binding the namespaces to them (the
	# library never removes a claim).
	rm -rf "$work/registry" "$work/pyregistry" \
	  "/dev/shm/.shmkeeper-claim.$uid.$ns_c" \
	  "/dev/shm/.shmkeeper-claim.$uid.$ns_py"
}
trap cleanup EXIT
cleanup

# libshmkeeper-dev: its pkg-config file, header and library, from ROOT.
# (The system's own directories are not filtered out: in ROOT they are
# not the system's.)
PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_PATH=$libdir/pkgconfig \
PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1 \
  sh -c '$0 -o "$1" "$2" $(pkg-config --cflags --libs shmkeeper)' \
  "$CC" "$work/installcheck" "$src/installcheck.c"
# libshmkeeper0: the program runs on the packaged library, by its soname.
LD_LIBRARY_PATH=$libdir ldd "$work/installcheck" |
  grep -q " => $libdir/libshmkeeper.so.0 " ||
  { echo "deb: installcheck does not use $libdir/libshmkeeper.so.0"; exit 1; }
LD_LIBRARY_PATH=$libdir "$work/installcheck" "$work/registry" "$ns_c"

# shmkeeper-tools: the release's version; shmrun's compiled-in preload and
# the unit's ExecStart are files of the package.
"$root/usr/bin/shmls" --version | grep -qF "$version" ||
  { echo "deb: shmls --version does not say $version"; exit 1; }
preload=/usr/lib/$triplet/shmkeeper/libshmkeeper-preload.so
test -f "$root$preload" && grep -qF "$preload" "$root/usr/bin/shmrun" ||
  { echo "deb: shmrun does not name the packaged preload $preload"; exit 1; }
unit=$root/lib/systemd/system/shmclean.service
exe=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit")
test -x "$root$exe" ||
  { echo "deb: shmclean.service runs $exe, which the package lacks"; exit 1; }
# The unit is enabled (it runs at boot) but installing the package does not
# start it: an install or upgrade is not the moment to reap.
postinst=$(dpkg-deb -I "$out"/shmkeeper-tools_*.deb postinst)
echo "$postinst" | grep -q "deb-systemd-helper enable 'shmclean.service'" &&
  ! echo "$postinst" | grep -q "deb-systemd-invoke.*start" ||
  { echo "deb: shmkeeper-tools' postinst should enable shmclean.service, not start it"; exit 1; }

# python3-shmkeeper: imported from ROOT, it loads libshmkeeper.so.0 by its
# soname (no SHMKEEPER_LIB) from ROOT, and makes and removes a segment.
env -u SHMKEEPER_LIB PYTHONDONTWRITEBYTECODE=1 LD_LIBRARY_PATH=$libdir \
  PYTHONPATH=$root/usr/lib/python3/dist-packages \
  "$PYTHON" -c '
import os, sys, shmkeeper
root, reg = (os.path.realpath(a) for a in sys.argv[1:3])
ns = sys.argv[3]
assert shmkeeper.__file__.startswith(root + "/"), shmkeeper.__file__
assert shmkeeper.library_path == "libshmkeeper.so.0", shmkeeper.library_path
with open("/proc/self/maps") as f:
    maps = f.read()
assert root + "/usr/lib/" in maps, "libshmkeeper.so.0 not loaded from " + root
with shmkeeper.SharedMemory(create=True, size=4096, ns=ns, dir=reg) as s:
    s.buf[0] = 1
    s.unlink()
print("deb: python3-shmkeeper %s on libshmkeeper %s" % (shmkeeper.__file__, shmkeeper.library_version))
' "$root" "$work/pyregistry" "$ns_py"

left=$(ls /dev/shm | grep -E "^($ns_c|$ns_py)\\." || true)
test -z "$left" || { echo "deb: left in /dev/shm: $left"; exit 1; }
