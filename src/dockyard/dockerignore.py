""".dockerignore: which paths of a build context are left out (moby/patternmatcher).

Shared by the CLI (which leaves them out of the context tar it sends) and the
daemon (which applies the same file to a context sent whole, e.g. by curl).
Rules: one pattern a line, `#` comments, blank lines skipped, paths cleaned
and taken relative to the context root; Go's filepath.Match syntax plus `**`
(any number of directories); `!` makes an exception; the last pattern that
matches a path, or one of its parent directories, decides.
"""

from __future__ import annotations

import posixpath

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    import re


def read_patterns(text: str) -> list[str]:
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
        if line:
            line = posixpath.normpath(line).lstrip("/") or "."
        if line in ("", "."):
            continue  # "." and "/" name the whole context: nothing to match
        out.append(("!" if exclusion else "") + line)
    return out


def _regex(pattern: str) -> re.Pattern[str]:
    import re  # only with patterns: `re` (and enum) cost `dockyard build` ~4 ms to import

    out = ["^"]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 1
                while pattern[i + 1 : i + 2] == "*":
                    i += 1
                if pattern[i + 1 : i + 2] == "/":
                    out.append("(.*/)?")  # "**/" matches no directory or several
                    i += 1
                else:
                    out.append(".*")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                raise ValueError(f"syntax error in pattern {pattern!r}")
            body = pattern[i + 1 : end]
            if body.startswith("^"):
                body = "!" + body[1:]
            body = body.replace("\\", "\\\\")
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return re.compile("".join(out), re.S)


class Matcher:
    def __init__(self, patterns: list[str]) -> None:
        self._rules: list[tuple[bool, re.Pattern[str]]] = []
        for p in patterns:
            exclusion = p.startswith("!")
            self._rules.append((exclusion, _regex(p[1:] if exclusion else p)))
        self.has_exceptions = any(e for e, _ in self._rules)

    def __bool__(self) -> bool:
        return bool(self._rules)

    def excluded(self, path: str) -> bool:
        """Whether the context path ("src/a.txt", no leading slash) is left out."""
        path = posixpath.normpath(path).lstrip("/")
        parents = []
        parent = posixpath.dirname(path)
        while parent:
            parents.append(parent)
            parent = posixpath.dirname(parent)
        matched = False
        for exclusion, rx in self._rules:
            hit = rx.match(path) is not None or any(rx.match(p) for p in parents)
            if hit:
                matched = not exclusion
        return matched

    def may_hold_included(self, directory: str) -> bool:
        """Whether an excluded directory may still hold an exception (so walk it)."""
        return self.has_exceptions
