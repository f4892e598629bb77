"""Every link in every Markdown page of the repository stays inside it and resolves.

    links_test.py [ROOT]        check ROOT (default: the repository holding this file)
    links_test.py --self-test   check that broken links in a scratch tree are caught

A relative link must name a file or directory that exists, below ROOT; a
link to `#anchor` (in the same page or another .md page) must name one of
that page's headings, slugged as GitHub slugs them, or an HTML id/name. A link
with a scheme (http, https, ...) leaves the repository, and so does a path
that climbs above ROOT with `../`: both fail, so no page points at a package
registry or at files the repository does not ship. Bare http(s) URLs in the
text count as links too (GitHub makes them links); code blocks and code spans
are not read. Python 3 standard library only.
"""

import os
import re
import sys
import tempfile
import unicodedata
from urllib.parse import unquote

SKIP_DIRS = {".git", "node_modules"}

INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
AUTOLINK = re.compile(r"<([A-Za-z][A-Za-z0-9+.-]{1,31}:[^\s<>]*)>")
BARE_URL = re.compile(r"(?<![\w(<])https?://[^\s<>)\]]+")
HTML_ID = re.compile(r"<a\s[^>]*\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.I)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def markdown_files(root):
    for d, dirs, files in os.walk(root):
        # Build trees (anything CMake configured) hold other projects' pages.
        dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS and not x.startswith(".")
                         and not os.path.exists(os.path.join(d, x, "CMakeCache.txt")))
        for f in sorted(files):
            if f.endswith(".md"):
                yield os.path.join(d, f)


def outside_fences(text):
    """(line number, line) of the lines outside fenced code blocks."""
    fence = None
    for n, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            continue
        if m:
            fence = m.group(1)
            continue
        yield n, line


def prose_lines(text):
    """outside_fences, with code spans blanked."""
    for n, line in outside_fences(text):
        yield n, re.sub(r"(`+)(.+?)\1", lambda c: " " * len(c.group(0)), line)


def slug(heading):
    """GitHub's anchor for a heading: the rendered text, lower case, without
    punctuation but `-` and `_`, spaces to `-`."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)   # links keep their text
    text = re.sub(r"<[^>]+>", "", text)                        # inline HTML
    text = text.replace("`", "")
    text = re.sub(r"(\*\*|__|\*|~~)", "", text)                 # emphasis markers
    text = unicodedata.normalize("NFC", text).lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


_anchors = {}


def anchors(path):
    """The anchors a page offers: its headings' slugs (a repeated one gets
    -1, -2, ...) and the ids and names of its HTML anchors."""
    if path not in _anchors:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        found, seen = set(), {}
        for _, line in outside_fences(text):
            h = HEADING.match(line)
            if h:
                s = slug(h.group(2))
                n = seen.get(s, 0)
                seen[s] = n + 1
                found.add(s if n == 0 else f"{s}-{n}")
            found.update(HTML_ID.findall(line))
        _anchors[path] = found
    return _anchors[path]


def links(text):
    """(line number, target) of every link in the prose of a page."""
    for n, line in prose_lines(text):
        for m in INLINE_LINK.finditer(line):
            yield n, m.group(1)
        m = REFERENCE_DEF.match(line)
        if m:
            yield n, m.group(1)
        for m in AUTOLINK.finditer(line):
            yield n, m.group(1)
        stripped = AUTOLINK.sub("", INLINE_LINK.sub("", line))
        for m in BARE_URL.finditer(stripped):
            yield n, m.group(0)


def check(root):
    root = os.path.realpath(root)
    problems, count = [], 0
    for page in markdown_files(root):
        rel_page = os.path.relpath(page, root)
        with open(page, encoding="utf-8") as f:
            text = f.read()
        for n, target in links(text):
            count += 1
            where = f"{rel_page}:{n}: {target}"
            target = target.strip("<>")
            if SCHEME.match(target) or target.startswith("//"):
                problems.append(f"{where}: leaves the repository (a link with a scheme; link a page in docs/ instead)")
                continue
            path, _, anchor = target.partition("#")
            path = unquote(path)
            if path == "":
                dest = page
            elif path.startswith("/"):
                dest = os.path.normpath(os.path.join(root, path.lstrip("/")))
            else:
                dest = os.path.normpath(os.path.join(os.path.dirname(page), path))
            if dest != root and not dest.startswith(root + os.sep):
                problems.append(f"{where}: leaves the repository (climbs above its root)")
                continue
            if not os.path.exists(dest):
                problems.append(f"{where}: no such file or directory: {os.path.relpath(dest, root)}")
                continue
            if anchor and dest.endswith(".md") and os.path.isfile(dest):
                if unquote(anchor).lower() not in {a.lower() for a in anchors(dest)}:
                    problems.append(f"{where}: no heading with the anchor #{anchor} in {os.path.relpath(dest, root)}")
    return count, problems


def self_test():
    """The checker catches what it should, and only that."""
    pages = {
        "README.md": "# Top\n\n## Two commands\n\n[ok](docs/a.md) [ok](docs/a.md#the-image) [ok](#two-commands)\n"
                     "[ok](docs/) [ok](src/x.h) [ok](docs/a.md#wal-archiving-continuousarchiving)\n"
                     "`[not a link](nowhere.md)`\n\n```\n[not a link](nowhere.md) https://example.invalid/\n```\n",
        "docs/a.md": "# A\n\n## The image\n\n## WAL archiving: `ContinuousArchiving`\n\n[ok](../README.md#top)\n",
        "src/x.h": "",
        "bad/missing.md": "[broken](nope.md)\n",
        "bad/anchor.md": "[broken](../docs/a.md#the-chart)\n",
        "bad/same-page-anchor.md": "# Here\n\n[broken](#there)\n",
        "bad/outside.md": "[outside](../../shared/POLICY.md)\n",
        "bad/registry.md": "[registry](https://packages.example.invalid/some-package)\n",
        "bad/autolink.md": "see <https://example.invalid/x>\n",
        "bad/bare.md": "see https://example.invalid/x for more\n",
        "bad/reference.md": "[ref][r]\n\n[r]: absent.md\n",
    }
    with tempfile.TemporaryDirectory() as d:
        for name, body in pages.items():
            os.makedirs(os.path.dirname(os.path.join(d, name)), exist_ok=True)
            with open(os.path.join(d, name), "w") as f:
                f.write(body)
        _, problems = check(d)
    failing = sorted({p.split(":", 1)[0] for p in problems})
    expected = sorted(n for n in pages if n.startswith("bad/"))
    for p in problems:
        print(p)
    if failing != expected:
        raise SystemExit(f"self-test: expected problems in {expected}, got them in {failing}")
    print(f"self-test: {len(problems)} problems, one or more in each of the {len(expected)} broken pages and none elsewhere")


def main(argv):
    if argv[1:] == ["--self-test"]:
        self_test()
        return 0
    root = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    count, problems = check(root)
    for p in problems:
        print(p)
    print(f"{count} links checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
