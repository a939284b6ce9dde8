#!/bin/sh
# SPDX-License-Identifier: MIT
# metricscheck.sh BUILDDIR SRCDIR PYTHON - run by `make metricscheck`.
#
# Populates a temporary registry with every figure the metrics give (a live
# owner, a dead one, a stray, a segment reaped while another process maps
# it), has shmls --openmetrics and shmclean --openmetrics describe it, and
# has promtool (what Prometheus and node_exporter's textfile collector
# accept) and a strict OpenMetrics parser read each output; checks the
# alert rules of docs/prometheus-alerts.yml and that they name metrics the
# tools give.  Leaves nothing
# in /dev/shm or /tmp.
set -eu
B=$1 SRC=$2 PY=$3
T=$(mktemp -d /tmp/shmk-metricscheck.XXXXXX)
ns=mc$$
reg=$T/registry
pids=
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || :; done
	for p in $pids; do wait "$p" 2>/dev/null || :; done
	"$B/tools/shmclean" --dir "$reg" --namespace "$ns" --strays \
		--min-age 0 -q >/dev/null 2>&1 || :
	rm -f "/dev/shm/$ns".* "/dev/shm/.shmkeeper-claim.$(id -u).$ns"
	rm -rf "$T"
}
trap cleanup EXIT
export SHMKEEPER_LIB="$B/libshmkeeper.so.0" PYTHONPATH="$SRC/python" \
	PYTHONDONTWRITEBYTECODE=1 SHMKEEPER_DIR="$reg"

# Waits (bounded) for a file a background process writes once it is ready.
ready() {
	i=0
	while [ ! -s "$1" ]; do
		i=$((i + 1))
		[ $i -le 300 ] || { echo "metricscheck: $1 never came" >&2; exit 1; }
		sleep 0.1
	done
}

# A live owner: one segment, until the end.
"$PY" -c '
import sys, time, shmkeeper
s = shmkeeper.SharedMemory("live", create=True, size=4096, ns=sys.argv[1])
open(sys.argv[2], "w").write("ok")
time.sleep(600)' "$ns" "$T/live.ready" &
pids="$pids $!"
ready "$T/live.ready"
# A dead owner: two segments, SIGKILLed (the subshell keeps the shell's
# "Killed" off the output).
("$PY" -c '
import os, signal, sys, shmkeeper
a = shmkeeper.SharedMemory("dead", create=True, size=8192, ns=sys.argv[1])
b = shmkeeper.SharedMemory("held", create=True, size=8192, ns=sys.argv[1])
os.kill(os.getpid(), signal.SIGKILL)' "$ns") 2>/dev/null || :
[ -e "/dev/shm/$ns.held" ] || { echo "metricscheck: no dead owner made" >&2; exit 1; }
# Another process maps one of them: the reap will unlink it, not free it.
"$PY" -c '
import mmap, os, sys, time
fd = os.open("/dev/shm/%s.held" % sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 8192); os.close(fd)
open(sys.argv[2], "w").write("ok")
time.sleep(600)' "$ns" "$T/held.ready" &
pids="$pids $!"
ready "$T/held.ready"
# A stray.
head -c 4096 /dev/zero > "/dev/shm/$ns.loose"

# Runs a tool (whose exit status may say "something to see", 65 or 75:
# that is what the metrics report) and checks its exposition.
check() {
	out=$T/$1.prom; shift
	rc=0; "$@" > "$out" || rc=$?
	case $rc in 0|65|75) ;; *) echo "metricscheck: $* exited $rc" >&2; exit 1;; esac
	promtool check metrics < "$out" || { echo "metricscheck: promtool rejects $*:"; cat "$out"; exit 1; } >&2
	"$PY" "$SRC/tests/openmetrics_check.py" < "$out" || { cat "$out"; exit 1; } >&2
}
want() {
	grep -q "^$2" "$T/$1.prom" || { echo "metricscheck: $1: no \"$2\" in:" >&2; cat "$T/$1.prom" >&2; exit 1; }
}
l="registry=\"$reg\",namespace=\"$ns\""
check ls1 "$B/tools/shmls" --openmetrics
want ls1 "shmkeeper_owners{$l,state=\"dead\"} 1"
want ls1 "shmkeeper_owners{$l,state=\"alive\"} 1"
want ls1 "shmkeeper_strays{$l} 1"
check clean "$B/tools/shmclean" --openmetrics
want clean "shmkeeper_reap_objects{$l,outcome=\"removed\"} 2"
want clean "shmkeeper_reap_held_bytes{$l} 8192"
check ls2 "$B/tools/shmls" --openmetrics
want ls2 "shmkeeper_unlinked_mapped_bytes{$l} 8192"
# A refused registry: still a whole exposition.
mkdir -m 700 "$T/foreign" && : > "$T/foreign/file"
check refused_ls sh -c '"$0" --openmetrics --dir "$1" 2>/dev/null; [ $? = 78 ] && exit 75' "$B/tools/shmls" "$T/foreign"
check refused_clean sh -c '"$0" --openmetrics --dir "$1" 2>/dev/null; [ $? = 78 ] && exit 75' "$B/tools/shmclean" "$T/foreign"
# The alert rules we document are valid and name metrics the tools give.
promtool check rules "$SRC/docs/prometheus-alerts.yml" >/dev/null
for m in $(grep -o 'shmkeeper_[a-z_]*' "$SRC/docs/prometheus-alerts.yml" | sort -u); do
	grep -q "^# TYPE $m gauge" "$T/ls1.prom" "$T/clean.prom" ||
		{ echo "metricscheck: docs/prometheus-alerts.yml: no metric $m" >&2; exit 1; }
done
echo "metricscheck: shmls and shmclean --openmetrics pass promtool check metrics and the OpenMetrics parser"
