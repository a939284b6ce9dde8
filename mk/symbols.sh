#!/bin/sh
# SPDX-License-Identifier: MIT
# mk/symbols.sh - libshmkeeper's exported functions, which the public
# header, the symbol version script and the built library must agree on.
#
#   mk/symbols.sh map HEADER MAP   every function HEADER declares SHMK_API
#                                  is in MAP once, and MAP lists nothing
#                                  else (run before libshmkeeper.so is
#                                  linked, so a new public function missing
#                                  from the map fails the build)
#   mk/symbols.sh so HEADER SO     SO exports exactly HEADER's functions,
#                                  each with a SHMKEEPER_* version
#                                  (make abicheck; objdump -T)
#
# Silent when they agree; otherwise names every culprit and exits 1.
set -eu

# The names after SHMK_API, comments and preprocessor lines aside (a
# declaration may span lines).
header_names() {
	perl -0777 -ne 's{/\*.*?\*/}{}gs; s/^[ \t]*#.*$//mg;
		while (/\bSHMK_API\b[^;{(]*?\b(shmk_\w+)\s*\(/g) { print "$1\n" }' "$1" | sort
}
# Every name a version node lists (all of them global: "local: *;" only).
map_names() {
	perl -0777 -ne 's{/\*.*?\*/}{}gs;
		while (/^\s*(?:global:\s*)?(shmk_\w+)\s*;/mg) { print "$1\n" }' "$1" | sort
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Lines only in $1, then only in $2, each with its verdict.
differ() {
	comm -23 "$1" "$2" | prefix "$3"
	comm -13 "$1" "$2" | prefix "$4"
}
prefix() {
	awk -v p="$1" '{ print p ": " $0 }'
}

case "${1:-}" in
map)
	header_names "$2" | uniq > "$tmp/h"
	map_names "$3" > "$tmp/mm"
	uniq "$tmp/mm" > "$tmp/m"
	out=$( { differ "$tmp/h" "$tmp/m" \
		"$3: missing (add it to a new version node: docs/VERSIONING.md)" \
		"$3: not a SHMK_API function of $2"
		uniq -d "$tmp/mm" | prefix "$3: listed twice"; } )
	;;
so)
	header_names "$2" | uniq > "$tmp/h"
	# Defined dynamic symbols: "<addr> g DF .text <size> <version> <name>";
	# the version definitions themselves are *ABS* entries.
	objdump -T "$3" | awk '$2 == "g" && $4 != "*UND*" && $4 != "*ABS*" { print $NF, $(NF-1) }' \
		| sort > "$tmp/sv"
	cut -d' ' -f1 "$tmp/sv" > "$tmp/s"
	out=$( { differ "$tmp/h" "$tmp/s" \
		"$3: does not export" "$3: exports what $2 does not declare"
		awk '$2 !~ /^SHMKEEPER_[0-9]+\.[0-9]+$/ { print $1 " has version " $2 }' "$tmp/sv" \
			| prefix "$3"; } )
	if [ ! -s "$tmp/s" ]; then
		out="$3: no exported symbol found"
	fi
	;;
*)
	echo "usage: mk/symbols.sh map HEADER MAP | so HEADER SO" >&2
	exit 64
	;;
esac
if [ -n "$out" ]; then
	echo "$out" >&2
	exit 1
fi
