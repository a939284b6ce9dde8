# SPDX-License-Identifier: MIT
# valgrind-fds.awk - the descriptor verdict of make valgrind (valgrind.mk).
#
# Reads the logs of a run (--track-fds=yes) and prints every descriptor that
# a test process still held at its exit and that code of ours had opened (a
# frame of a file named in `ours`, the basenames of lib/ and tests/ sources):
# a descriptor leak of the library or of a test.  Exit status 1 if any.
# valgrind 3.19 lists open descriptors but does not count them as errors.
# Judged: the test processes (Command: .../shmk-tests with no arguments;
# the runner has some).  Not judged: forked children, which hold their
# parent's descriptors (marked by valgrind-preload.c), and the tools, which
# may end on a fatal error through exit() with what they hold.
BEGIN {
	n = split(ours, a, " ")
	for (i = 1; i <= n; i++)
		mine[a[i]] = 1
}
FNR == 1 { end_block(); test = 0; forked = 0; file = FILENAME }
/ Command: [^ ]*\/shmk-tests$/ { test = 1 }
/shmk-vg: forked child/ { forked = 1 }
/ Open [A-Za-z0-9_ ]+ [0-9]+:/ {
	end_block()
	block = $0
	inblock = 1
	hit = 0
	next
}
inblock && /^==[0-9]+==    / {
	block = block "\n" $0
	if (match($0, /\([^ ()]+\.c:[0-9]+\)$/)) {
		f = substr($0, RSTART + 1, RLENGTH - 2)
		sub(/:[0-9]+$/, "", f)
		if (f in mine)
			hit = 1
	}
	next
}
inblock { end_block() }
END {
	end_block()
	exit bad
}

function end_block() {
	if (inblock && hit && test && !forked) {
		print "---- " file ": descriptor still open at exit"
		print block
		bad = 1
	}
	inblock = 0
}
