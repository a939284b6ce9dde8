#!/bin/sh
# SPDX-License-Identifier: MIT
# readme-check.sh README EXAMPLE: the code block that follows the line
# "<!-- from EXAMPLE -->" in README must be, line for line, the lines of
# EXAMPLE between its "/* [readme] */" and "/* [/readme] */" markers (one
# tab of indent less; two marked regions are joined by a "..." line).
set -eu
readme=$1 example=$2
want=$(awk '
	/\/\* \[\/readme\] \*\// { on = 0; n++; next }
	/\/\* \[readme\] \*\//   { on = 1; if (n) print "..."; next }
	on { sub(/^\t/, ""); print }' "$example")
got=$(awk -v tag="<!-- from $example -->" '
	$0 == tag { found = 1; next }
	found && /^```/ { if (in_block) exit; in_block = 1; next }
	in_block { print }' "$readme")
if [ -z "$want" ]; then
	echo "readme-check: no [readme] markers in $example" >&2; exit 1
fi
if [ "$want" != "$got" ]; then
	echo "readme-check: the snippet in $readme is not the marked part of $example:" >&2
	printf '%s\n' "$want" > "${TMPDIR:-/tmp}/readme-want.$$"
	printf '%s\n' "$got" > "${TMPDIR:-/tmp}/readme-got.$$"
	diff -u "${TMPDIR:-/tmp}/readme-want.$$" "${TMPDIR:-/tmp}/readme-got.$$" >&2 || true
	rm -f "${TMPDIR:-/tmp}/readme-want.$$" "${TMPDIR:-/tmp}/readme-got.$$"
	exit 1
fi
