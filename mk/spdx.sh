#!/bin/sh
# SPDX-License-Identifier: MIT
# mk/spdx.sh - the licence line of every source file we own.
#
#   mk/spdx.sh --check   list the source files without the line on their
#                        first or second line; exit 1 if there is one
#                        (make licensecheck, part of make check)
#   mk/spdx.sh --fix     add the line to those files, as a comment of their
#                        language: line 1, or line 2 after a "#!" line
#   mk/spdx.sh --list    the source files and how each is commented
#
# Run from the top of the source tree.  The files are those git knows
# (tracked, or new and not ignored), else every file under the tree; the
# source files among them are chosen by the rules of classify() below: what we
# wrote (C, make, Python, shell, awk, linker scripts, suppressions,
# dictionaries, unit and config files) in Makefile, lib/, tools/, tests/
# (bench and fuzz included), python/, examples/, mk/, .ci/, and shell
# scripts anywhere; registry/schema.json carries it as "$comment".  Not:
# documentation (README, *.md, man pages), data fixtures that cannot hold a
# comment (registry/valid, registry/invalid, the fuzz corpus and crash
# inputs, *.json, *.jsonl), anything else without a rule.
set -euf
LINE='SPDX-License-Identifier: MIT'

files() {
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files --cached --others --exclude-standard
	else
		find . -path ./.git -prune -o -path './build*' -prune -o \
			-name __pycache__ -prune -o -type f -print | sed 's|^\./||'
	fi
}

# "KIND PATH" for each source file, KIND its comment style: c, hash or json.
# One pass over the names (a shell case per file is too slow); only the
# files of our directories that no name rule covers are opened, to see
# whether they are scripts ("#!").
classify() {
	awk '
	$0 == "registry/schema.json" { print "json", $0; next }
	/^(registry|debian)\// || /^tests\/fuzz\/(corpus|crashes)\// { next }
	/(^|\/)README$/ || /\.(md|json|jsonl|why)$/ { next }
	!(/^(lib|tools|tests|python|examples|mk|\.ci)\// || $0 == "Makefile" || /\.sh$/) { next }
	/\.(c|h|map)$/ { print "c", $0; next }
	/(^|\/)Makefile$/ || /\.(mk|py|sh|bash|awk|supp|dict|service|socket|timer|conf|cfg|ini|toml|in)$/ {
		print "hash", $0; next }
	{ print "probe", $0 }' | while read -r k f; do
		if [ "$k" != probe ]; then
			echo "$k $f"
		elif head -c 2 "$f" 2>/dev/null | grep -q '^#!'; then
			echo "hash $f"
		fi
	done
}

has_line() {
	head -n 2 "$1" | grep -q "$LINE"
}

# Insert the line after line $2 (0: before the first line) of file $1.
insert() {
	tmp="$1.spdx.$$"
	{
		head -n "$2" "$1"
		printf '%s\n' "$3"
		tail -n +"$(($2 + 1))" "$1"
	} > "$tmp"
	chmod --reference="$1" "$tmp"
	mv "$tmp" "$1"
}

fix() {
	case $2 in
	c) insert "$1" 0 "/* $LINE */" ;;
	hash)
		if head -n 1 "$1" | grep -q '^#!'; then
			insert "$1" 1 "# $LINE"
		else
			insert "$1" 0 "# $LINE"
		fi ;;
	json)
		if [ "$(head -n 1 "$1")" != '{' ]; then
			echo "$1: does not start with a line '{': add \"\$comment\": \"$LINE\" by hand" >&2
			return 1
		fi
		insert "$1" 1 "  \"\$comment\": \"$LINE\"," ;;
	esac
}

mode=${1:-}
case $mode in
--check | --fix | --list) ;;
*) echo "usage: mk/spdx.sh --check | --fix | --list" >&2; exit 64 ;;
esac

sources=$(files | classify)
bare=$(mktemp)
trap 'rm -f "$bare"' EXIT
n=$(printf '%s\n' "$sources" | grep -c .) || true
case $mode in
--list)
	printf '%s\n' "$sources" ;;
--check | --fix)
	# The files without the line on line 1 or 2, in one pass.
	printf '%s\n' "$sources" | cut -d' ' -f2- | xargs -r -d '\n' awk -v line="$LINE" '
		FNR <= 2 && index($0, line) { ok[FILENAME] = 1 }
		END { for (i = 1; i < ARGC; i++) if (!(ARGV[i] in ok)) print ARGV[i] }' > "$bare"
	missing=$(grep -c . "$bare") || true
	if [ "$mode" = --fix ]; then
		while read -r f; do
			k=$(printf '%s\n' "$sources" | awk -v f="$f" '{ p = $0; sub(/^[a-z]+ /, "", p) } p == f { print $1; exit }')
			fix "$f" "$k" && echo "$f: added"
		done < "$bare"
	else
		sed "s/\$/: no '$LINE' on line 1 or 2/" "$bare"
	fi
	if [ "$mode" = --check ]; then
		if [ "$missing" -ne 0 ]; then
			echo "licensecheck: $missing of $n source files lack the licence line (mk/spdx.sh --fix adds it)"
			exit 1
		fi
		echo "licensecheck: $n source files, each with '$LINE'"
	fi ;;
esac
