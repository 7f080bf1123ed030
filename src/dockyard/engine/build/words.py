"""Variable expansion and quote removal in Dockerfile arguments (moby's shell.Lex).

`word` is ProcessWord (one value: ENV, LABEL, WORKDIR, USER ...), `words` is
ProcessWords (split on unquoted blanks: COPY sources, EXPOSE, VOLUME ...).
Quotes are removed, `$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME-word}`,
`${NAME:+word}`, `${NAME+word}`, `${NAME:?msg}` and `${NAME?msg}` expand from
the build's environment (ENV and ARG values), nothing inside single quotes
does, and the escape character (`\\`, or the one the `escape` directive sets)
takes the next one literally.
"""

from __future__ import annotations

from dockyard.errors import InvalidParameter

_NAME_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
_NAME_CHARS = _NAME_START + "0123456789"


class _Scan:
    def __init__(self, text: str, env: dict[str, str], escape: str) -> None:
        self.text = text
        self.i = 0
        self.env = env
        self.escape = escape

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.i += 1
        return ch


def word(text: str, env: dict[str, str], escape: str = "\\") -> str:
    """The whole text as one value (blanks kept, quotes removed, variables expanded)."""
    return "".join(part for part, _ in _process(_Scan(text, env, escape), split=False))


def words(text: str, env: dict[str, str], escape: str = "\\") -> list[str]:
    """The text split into words on unquoted blanks, each expanded."""
    out: list[str] = []
    current: list[str] = []
    started = False
    for part, boundary in _process(_Scan(text, env, escape), split=True):
        if boundary:
            if started:
                out.append("".join(current))
            current, started = [], False
            continue
        current.append(part)
        started = True
    if started:
        out.append("".join(current))
    return out


def _process(s: _Scan, split: bool, stop: str = "") -> list[tuple[str, bool]]:
    """(text, is_word_boundary) pieces up to `stop` (consumed) or the end."""
    out: list[tuple[str, bool]] = []
    while s.i < len(s.text):
        ch = s.peek()
        if stop and ch == stop:
            s.next()
            return out
        if split and ch in " \t\n\r":
            s.next()
            out.append(("", True))
            continue
        if ch == s.escape:
            s.next()
            if s.i >= len(s.text):
                break
            out.append((s.next(), False))
        elif ch == "'":
            out.append((_single_quoted(s), False))
        elif ch == '"':
            out.append((_double_quoted(s), False))
        elif ch == "$":
            value = _dollar(s)
            if split and not value:
                continue  # an unquoted empty expansion is no word
            if split:
                # An unquoted expansion is split into words too.
                pieces = value.split()
                if value[:1].isspace():
                    out.append(("", True))
                for n, piece in enumerate(pieces):
                    if n:
                        out.append(("", True))
                    out.append((piece, False))
                if value[-1:].isspace():
                    out.append(("", True))
            else:
                out.append((value, False))
        else:
            out.append((s.next(), False))
    if stop:
        raise InvalidParameter(f"syntax error: missing '{stop}' in '{s.text}'")
    return out


def _single_quoted(s: _Scan) -> str:
    s.next()
    start = s.i
    end = s.text.find("'", start)
    if end == -1:
        raise InvalidParameter(
            "unexpected end of statement while looking for matching single-quote"
        )
    s.i = end + 1
    return s.text[start:end]


def _double_quoted(s: _Scan) -> str:
    s.next()
    out: list[str] = []
    while True:
        if s.i >= len(s.text):
            raise InvalidParameter(
                "unexpected end of statement while looking for matching double-quote"
            )
        ch = s.peek()
        if ch == '"':
            s.next()
            return "".join(out)
        if ch == "$":
            out.append(_dollar(s))
        elif ch == s.escape:
            s.next()
            following = s.peek()
            if following in ('"', "$", s.escape) and following:
                out.append(s.next())
            else:
                out.append(s.escape)
        else:
            out.append(s.next())


def _name(s: _Scan) -> str:
    start = s.i
    while s.peek() and s.peek() in _NAME_CHARS:
        s.i += 1
    return s.text[start : s.i]


def _dollar(s: _Scan) -> str:
    s.next()  # "$"
    if s.peek() != "{":
        if not s.peek() or s.peek() not in _NAME_START:
            return "$"
        return s.env.get(_name(s), "")
    s.next()  # "{"
    name = _name(s)
    if not name:
        raise InvalidParameter(f"bad substitution: missing name in '{s.text}'")
    ch = s.next()
    if ch == "}":
        return s.env.get(name, "")
    colon = ch == ":"
    op = s.next() if colon else ch
    if op not in ("-", "+", "?"):
        raise InvalidParameter(f"unsupported modifier ({op}) in substitution: '{s.text}'")
    arg = "".join(part for part, _ in _process(s, split=False, stop="}"))
    is_set = name in s.env
    value = s.env.get(name, "")
    present = bool(value) if colon else is_set
    if op == "-":
        return value if present else arg
    if op == "+":
        return arg if present else ""
    if not present:
        raise InvalidParameter(f"{name}: {arg or 'is not allowed to be unset'}")
    return value


def raw_word(text: str, env: dict[str, str], escape: str = "\\") -> str:
    """Variables expanded, quotes and escapes left as written (BuildKit's lexer
    with RawQuotes and RawEscapes, for a COPY heredoc's body): `'$X'` stays
    as is, `"$X"` expands inside its quotes, an escaped `\\$X` stays."""
    s = _Scan(text, env, escape)
    out: list[str] = []
    while s.i < len(s.text):
        ch = s.peek()
        if ch == escape:
            out.append(s.next())
            if s.i < len(s.text):
                out.append(s.next())
        elif ch == "'":
            end = s.text.find("'", s.i + 1)
            if end == -1:
                raise InvalidParameter(
                    "unexpected end of statement while looking for matching single-quote"
                )
            out.append(s.text[s.i : end + 1])
            s.i = end + 1
        elif ch == '"':
            out.append(s.next())
            while True:
                if s.i >= len(s.text):
                    raise InvalidParameter(
                        "unexpected end of statement while looking for matching double-quote"
                    )
                ch = s.peek()
                if ch == '"':
                    out.append(s.next())
                    break
                if ch == "$":
                    out.append(_dollar(s))
                elif ch == escape:
                    out.append(s.next())
                    if s.peek() in ('"', "$", escape) and s.peek():
                        out.append(s.next())
                else:
                    out.append(s.next())
        elif ch == "$":
            out.append(_dollar(s))
        else:
            out.append(s.next())
    return "".join(out)
