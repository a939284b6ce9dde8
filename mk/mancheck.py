#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""mancheck - the manual pages say what the code does (mk/man.mk).

  mancheck.py [--write-links] SRCDIR BUILDDIR STAGED_MANDIR

Fails (exit 1, one line per problem) unless:
  - every page in docs/ renders with man-db and groff without a warning
    (man --warnings -l: groff warnings go to standard error);
  - every page has NAME, SYNOPSIS, DESCRIPTION, EXAMPLES and SEE ALSO, a
    section-3 page also RETURN VALUE, a section-1 page also OPTIONS, EXIT
    STATUS and FILES;
  - every function declared in lib/shmkeeper.h is named in the NAME of
    exactly one section-3 page, whose SYNOPSIS gives the header's prototype
    (the same types and parameter names), and every other name of a page's
    NAME has a link page docs/<name>.3 holding ".so man3/<page>.3" (and no
    link page names nothing);
  - after "make install", "man <name>" finds every function, page and link
    in STAGED_MANDIR;
  - every option a tool parses (tools/<tool>.c: its struct option table
    and its getopt string) is in its --help, every option of its --help is
    in its man page's OPTIONS and (one spelling of each) in its SYNOPSIS,
    and every exit code of its --help is in the page's EXIT STATUS.

--write-links writes the link pages from the NAME sections and exits.
"""
import concurrent.futures
import os
import re
import subprocess
import sys

problems = []
rendered = {}  # docs/<page> -> (exit code, text, warnings)


def problem(msg):
    problems.append(msg)


def render(args, width=80, encoding="UTF-8"):
    """man's output and its warnings for man ARGS."""
    env = dict(os.environ, LC_ALL="C.UTF-8", MANROFFSEQ="", MANWIDTH=str(width),
               MAN_KEEP_FORMATTING="", MANPAGER="cat", PAGER="cat")
    r = subprocess.run(["man", "--warnings", "-E", encoding] + args,
                       env=env, capture_output=True, text=True)
    out = re.sub(r".\x08", "", r.stdout)  # overstrike, in case
    # For matching against source text: groff's hyphens, minus signs and
    # quotes as ASCII.
    out = out.translate({0x2010: "-", 0x2011: "-", 0x2212: "-", 0x2019: "'",
                         0x2018: "'", 0x201c: '"', 0x201d: '"'})
    return r.returncode, out, r.stderr


def sections(text):
    """{section name: its text} of a rendered page."""
    out, cur = {}, None
    for line in text.splitlines():
        if re.match(r"^[A-Z][A-Z ]+$", line):
            cur = line.strip()
            out[cur] = []
        elif cur:
            out[cur].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def norm(s):
    s = re.sub(r"\s+", " ", s)
    s = re.sub(r"\( ", "(", s)
    s = re.sub(r" \)", ")", s)
    return s.strip()


def header_functions(path):
    """{name: prototype} of every SHMK_API function of the header."""
    text = open(path).read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    funcs = {}
    for m in re.finditer(r"^SHMK_API\s+([^;{#]*?\b(shmk_\w+)\s*\([^;#]*\))\s*;",
                         text, re.M):
        funcs[m.group(2)] = norm(m.group(1)) + ";"
    return funcs


def roff_names(path):
    """The names of a page's NAME section (before the "\\-")."""
    lines, on = [], False
    for line in open(path):
        if line.startswith(".SH"):
            if on:
                break
            on = line.split(None, 1)[1].strip().strip('"') == "NAME"
            continue
        if on and not line.startswith(".\\\""):
            lines.append(line.strip())
    text = " ".join(lines)
    if "\\-" not in text:
        return None
    return [n.strip() for n in text.split("\\-", 1)[0].split(",") if n.strip()]


def is_link(path):
    with open(path) as f:
        return f.read().startswith(".so ")


def check_pages(src, stage, write_links):
    docs = os.path.join(src, "docs")
    pages = sorted(f for f in os.listdir(docs) if re.search(r"\.[1-8]$", f))
    real = [p for p in pages if not is_link(os.path.join(docs, p))]
    links = [p for p in pages if is_link(os.path.join(docs, p))]
    funcs = header_functions(os.path.join(src, "lib", "shmkeeper.h"))

    # Section-3 NAMEs against the header, and the link pages they need.
    named, want_links = {}, {}
    for p in real:
        if not p.endswith(".3"):
            continue
        names = roff_names(os.path.join(docs, p)) or []
        base = p[:-2]
        if base not in names:
            problem(f"docs/{p}: NAME does not name {base}")
        for n in names:
            if n in named:
                problem(f"docs/{p}: {n} is also in the NAME of docs/{named[n]}")
            named[n] = p
            if n != base and n in funcs:
                want_links[n] = p
    if write_links:
        for n, p in sorted(want_links.items()):
            with open(os.path.join(docs, n + ".3"), "w") as f:
                f.write(f".so man3/{p}\n")
        for p in links:
            if p[:-2] not in want_links:
                os.unlink(os.path.join(docs, p))
        return
    for n in sorted(funcs):
        if n not in named:
            problem(f"lib/shmkeeper.h: {n}() has no manual page "
                    "(name it in the NAME of a section-3 page)")
    for n in sorted(set(named) - set(funcs)):
        if named[n] != "shmkeeper.3":
            problem(f"docs/{named[n]}: names {n}, which lib/shmkeeper.h "
                    "does not declare")
    for n, p in sorted(want_links.items()):
        lp = os.path.join(docs, n + ".3")
        if not os.path.exists(lp):
            problem(f"docs/{n}.3: missing link page to {p} "
                    "(python3 mk/mancheck.py --write-links ...)")
        elif open(lp).read() != f".so man3/{p}\n":
            problem(f"docs/{n}.3: should hold exactly \".so man3/{p}\"")
    for p in links:
        if p[:-2] not in want_links:
            problem(f"docs/{p}: a link page for a name no NAME section has")

    # Every real page renders without a warning, with its sections.
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        for p, r in zip(real, ex.map(
                lambda p: render(["-l", os.path.join(docs, p)]), real)):
            rendered[p] = r
    for p in real:
        path = os.path.join(docs, p)
        rc, out, err = rendered[p]
        if rc != 0 or err.strip():
            problem(f"docs/{p}: man --warnings -l: exit {rc}: {err.strip()}")
        secs = sections(out)
        need = ["NAME", "SYNOPSIS", "DESCRIPTION", "EXAMPLES", "SEE ALSO"]
        if p.endswith(".3"):
            need.append("RETURN VALUE")
        if p.endswith(".1"):
            need += ["OPTIONS", "EXIT STATUS", "FILES"]
        for s in need:
            if s not in secs:
                problem(f"docs/{p}: no {s} section")
        # Prototypes (the SYNOPSIS is not filled: nothing is wrapped).
        if p.endswith(".3"):
            syn = norm(secs.get("SYNOPSIS", ""))
            for n in roff_names(path) or []:
                if n in funcs and funcs[n] not in syn:
                    problem(f"docs/{p}: SYNOPSIS lacks the prototype "
                            f"\"{funcs[n]}\"")

    # What "man <name>" finds once installed: the page itself for a page,
    # the page of its family (through the link page's .so) for a function.
    want = {n: named.get(n, n + ".3") for n in funcs}
    want.update({p.rsplit(".", 1)[0]: p for p in real})
    def where(item):
        name, page = item
        sec = page.rsplit(".", 1)[1]
        return subprocess.run(["man", "-w", "-M", stage, sec, name],
                              capture_output=True, text=True)
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        found = list(ex.map(where, sorted(want.items())))
    for (name, page), r in zip(sorted(want.items()), found):
        sec = page.rsplit(".", 1)[1]
        got = r.stdout.strip()
        if r.returncode != 0 or got != os.path.join(stage, "man" + sec, page):
            problem(f"man {sec} {name} (installed in {stage}) finds "
                    f"\"{got or r.stderr.strip()}\", not man{sec}/{page}")


def opt_re(o):
    return re.compile(r"(?<![\w-])" + re.escape(o) + r"(?![\w-])")


def check_tools(src, build):
    tools = sorted(f[:-2] for f in os.listdir(os.path.join(src, "tools"))
                   if f.endswith(".c") and f != "common.c")
    for t in tools:
        code = open(os.path.join(src, "tools", t + ".c")).read()
        parsed = set()
        for m in re.finditer(r"struct option \w+\[\] = \{(.*?)\};", code, re.S):
            parsed |= {"--" + n for n in re.findall(r"\{\s*\"([\w-]+)\"",
                                                     m.group(1))}
        for m in re.finditer(r"getopt_long\([^,]+,[^,]+,\s*\"([^\"]*)\"", code):
            parsed |= {"-" + c for c in m.group(1) if c.isalnum()}
        if not parsed:
            problem(f"tools/{t}.c: no option table found")
        r = subprocess.run([os.path.join(build, "tools", t), "--help"],
                           capture_output=True, text=True)
        helptext = r.stdout
        if r.returncode != 0:
            problem(f"{t} --help: exit {r.returncode}")
            continue
        for o in sorted(parsed):
            if not opt_re(o).search(helptext):
                problem(f"{t}: option {o} is parsed but not in --help")
        # Options of the help: the lines of its Options: list.
        block = re.search(r"\nOptions:\n(.*?)\n\n", helptext, re.S)
        groups = []
        for line in (block.group(1) if block else "").splitlines():
            m = re.match(r"  (-.*?)(?:  |$)", line)
            if m:
                groups.append(re.findall(r"(?<![\w-])--?[\w][\w-]*", m.group(1)))
        if not groups:
            problem(f"{t} --help: no Options: list")
        codes = re.findall(r"^  (\d+)  ",
                           helptext.split("\nExit status:\n", 1)[-1], re.M)
        if not codes:
            problem(f"{t} --help: no exit codes")
        page = os.path.join(src, "docs", t + ".1")
        if not os.path.exists(page):
            problem(f"{t}: no manual page docs/{t}.1")
            continue
        secs = sections(rendered[t + ".1"][1])
        for g in groups:
            for o in g:
                if not opt_re(o).search(secs.get("OPTIONS", "")):
                    problem(f"docs/{t}.1: OPTIONS lacks {o} (in --help)")
            if not any(opt_re(o).search(secs.get("SYNOPSIS", "")) for o in g):
                problem(f"docs/{t}.1: SYNOPSIS lacks {' or '.join(g)} "
                        "(in --help)")
        for c in codes:
            if not re.search(r"^\s+" + c + r"\b", secs.get("EXIT STATUS", ""),
                             re.M):
                problem(f"docs/{t}.1: EXIT STATUS lacks {c} (in --help)")


def main():
    args = sys.argv[1:]
    write = "--write-links" in args
    args = [a for a in args if a != "--write-links"]
    if len(args) != 3 and not (write and len(args) >= 1):
        sys.exit(__doc__)
    src = args[0]
    if write:
        check_pages(src, None, True)
        return 0
    build, stage = args[1], args[2]
    check_pages(src, stage, False)
    check_tools(src, build)
    for p in problems:
        print("mancheck: " + p)
    if problems:
        print(f"mancheck: {len(problems)} problem(s)")
        return 1
    print("mancheck: every page renders without a warning; every function, "
          "option and exit code is documented")
    return 0


if __name__ == "__main__":
    sys.exit(main())
