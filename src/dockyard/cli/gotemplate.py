"""Go ``text/template`` for ``--format``, with Docker's extra functions.

A faithful subset of Go's text/template (as used by ``docker inspect -f``,
``docker ps --format`` …) plus docker/cli's ``templates`` functions
(json, split, join, title, lower, upper, pad, truncate) and a port of the
tabwriter docker/cli uses to align ``table`` output.

Data is JSON-like (dict/list/str/int/float/bool/None).  JSON objects behave
like Go ``map[string]interface{}``: a missing key renders ``<no value>``.

Stdlib only; templates are compiled lazily and cached.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "TemplateError",
    "render",
    "render_header",
    "parse_table",
    "tabwrite",
    "format_table",
    "compile_template",
]


class TemplateError(ValueError):
    """A template failed to parse or to execute (message worded like Go's)."""


class _Missing:
    """Go's invalid reflect.Value: a missing map key. Prints ``<no value>``."""

    _inst: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._inst is None:
            cls._inst = super().__new__(cls)
        return cls._inst

    def __repr__(self) -> str:
        return "<no value>"


MISSING: Any = _Missing()

# --------------------------------------------------------------------------
# Lexer

_T_TEXT = "text"
_T_LEFT = "{{"
_T_RIGHT = "}}"
_T_SPACE = "space"
_T_FIELD = "field"
_T_DOT = "."
_T_VAR = "variable"
_T_IDENT = "identifier"
_T_KEYWORD = "keyword"
_T_BOOL = "bool"
_T_NIL = "nil"
_T_NUMBER = "number"
_T_CHARCONST = "charconst"
_T_STRING = "string"
_T_PIPE = "|"
_T_LPAREN = "("
_T_RPAREN = ")"
_T_DECLARE = ":="
_T_ASSIGN = "="
_T_CHAR = "char"
_T_EOF = "EOF"
_T_ERROR = "error"

_KEYWORDS = frozenset(
    ["block", "break", "continue", "define", "else", "end", "if", "range", "template", "with"]
)
_SPACE_CHARS = " \t\r\n"
_NUM_RE = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]*(?:\.[0-9a-fA-F_]*)?(?:[pP][+-]?[0-9_]+)?"
    r"|0[bB][01_]+|0[oO][0-7_]+"
    r"|[0-9_]*(?:\.[0-9_]*)?(?:[eE][+-]?[0-9_]+)?)i?"
)
_IDENT_RE = re.compile(r"[A-Za-z0-9_]+")


class _Tok:
    __slots__ = ("typ", "val", "pos", "line")

    def __init__(self, typ: str, val: str, pos: int, line: int) -> None:
        self.typ = typ
        self.val = val
        self.pos = pos
        self.line = line

    def __str__(self) -> str:
        if self.typ == _T_EOF:
            return "EOF"
        if self.typ == _T_ERROR:
            return self.val
        if self.typ in (_T_KEYWORD, _T_DOT, _T_NIL):
            return f"<{self.val}>"
        if len(self.val) > 10:
            return _go_quote(self.val[:10]) + "..."
        return _go_quote(self.val)


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isalnum()


def _lex(src: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    n = len(src)
    line = 1

    def add(typ: str, val: str, at: int) -> None:
        toks.append(_Tok(typ, val, at, line + src.count("\n", start_line_pos[0], at)))

    start_line_pos = [0]
    while True:
        i = src.find("{{", pos)
        if i < 0:
            if pos < n:
                add(_T_TEXT, src[pos:], pos)
            add(_T_EOF, "", n)
            return toks
        trim_left = src.startswith("-", i + 2) and i + 3 < n and src[i + 3] in _SPACE_CHARS
        text = src[pos:i]
        if trim_left:
            text = text.rstrip(_SPACE_CHARS)
        if text:
            add(_T_TEXT, text, pos)
        p = i + 2
        if trim_left:
            p += 2
        # comment
        if src.startswith("/*", p):
            end = src.find("*/", p + 2)
            if end < 0:
                add(_T_ERROR, "unclosed comment", p)
                return toks
            q = end + 2
            trim_right = False
            if src.startswith(" -}}", q):
                trim_right = True
                q += 4
            elif src.startswith("}}", q):
                q += 2
            else:
                add(_T_ERROR, "comment ends before closing delimiter", q)
                return toks
            if trim_right:
                while q < n and src[q] in _SPACE_CHARS:
                    q += 1
            pos = q
            continue
        add(_T_LEFT, "{{", i)
        depth = 0
        while True:
            if src.startswith(" -}}", p) or src.startswith("}}", p):
                if depth:
                    add(_T_ERROR, "unclosed left paren", p)
                    return toks
                trim_right = src[p] == " "
                if trim_right:
                    p += 2
                add(_T_RIGHT, "}}", p)
                p += 2
                if trim_right:
                    while p < n and src[p] in _SPACE_CHARS:
                        p += 1
                pos = p
                break
            if p >= n:
                add(_T_ERROR, "unclosed action", p)
                return toks
            c = src[p]
            if c in _SPACE_CHARS:
                q = p
                while q < n and src[q] in _SPACE_CHARS:
                    q += 1
                if src.startswith("-}}", q) and q > p:
                    q -= 1  # leave the space of " -}}"
                    if q == p:
                        continue
                add(_T_SPACE, src[p:q], p)
                p = q
            elif c == "=":
                add(_T_ASSIGN, "=", p)
                p += 1
            elif c == ":":
                if not src.startswith(":=", p):
                    add(_T_ERROR, "expected :=", p)
                    return toks
                add(_T_DECLARE, ":=", p)
                p += 2
            elif c == "|":
                add(_T_PIPE, "|", p)
                p += 1
            elif c in "\"`'":
                q = p + 1
                if c == "`":
                    end = src.find("`", q)
                    if end < 0:
                        add(_T_ERROR, "unterminated raw quoted string", p)
                        return toks
                    q = end + 1
                else:
                    while True:
                        if q >= n or src[q] == "\n":
                            msg = (
                                "unterminated quoted string"
                                if c == '"'
                                else "unterminated character constant"
                            )
                            add(_T_ERROR, msg, p)
                            return toks
                        if src[q] == "\\":
                            q += 2
                            continue
                        if src[q] == c:
                            q += 1
                            break
                        q += 1
                add(_T_CHARCONST if c == "'" else _T_STRING, src[p:q], p)
                p = q
            elif c == "$":
                m = _IDENT_RE.match(src, p + 1)
                q = m.end() if m else p + 1
                add(_T_VAR, src[p:q], p)
                p = q
            elif c == "." and not (p + 1 < n and src[p + 1].isdigit()):
                if p + 1 < n and _is_alnum(src[p + 1]):
                    m = _IDENT_RE.match(src, p + 1)
                    assert m is not None
                    add(_T_FIELD, src[p : m.end()], p)
                    p = m.end()
                else:
                    add(_T_DOT, ".", p)
                    p += 1
            elif c in "+-." or c.isdigit():
                m = _NUM_RE.match(src, p)
                q = m.end() if m else p
                if q == p or (q < n and _is_alnum(src[q])):
                    while q < n and _is_alnum(src[q]):
                        q += 1
                    add(_T_ERROR, f"bad number syntax: {_go_quote(src[p:q])}", p)
                    return toks
                add(_T_NUMBER, src[p:q], p)
                p = q
            elif _is_alnum(c):
                m = _IDENT_RE.match(src, p)
                assert m is not None
                word = m.group()
                if word in _KEYWORDS:
                    add(_T_KEYWORD, word, p)
                elif word in ("true", "false"):
                    add(_T_BOOL, word, p)
                elif word == "nil":
                    add(_T_NIL, word, p)
                else:
                    add(_T_IDENT, word, p)
                p = m.end()
            elif c == "(":
                depth += 1
                add(_T_LPAREN, "(", p)
                p += 1
            elif c == ")":
                depth -= 1
                if depth < 0:
                    add(_T_ERROR, "unexpected right paren U+0029 ')'", p)
                    return toks
                add(_T_RPAREN, ")", p)
                p += 1
            elif c.isprintable() and ord(c) < 0x7F:
                add(_T_CHAR, c, p)
                p += 1
            else:
                add(_T_ERROR, f"unrecognized character in action: {_go_rune(c)}", p)
                return toks


def _go_rune(c: str) -> str:
    return f"U+{ord(c):04X} {_go_quote(c, quote=chr(39))}"


# --------------------------------------------------------------------------
# Nodes


class _Node:
    __slots__ = ("pos", "end")

    def __init__(self, pos: int, end: int) -> None:
        self.pos = pos
        self.end = end


class _Text(_Node):
    __slots__ = ("text",)

    def __init__(self, pos: int, text: str) -> None:
        super().__init__(pos, pos)
        self.text = text


class _Field(_Node):
    __slots__ = ("names",)

    def __init__(self, pos: int, end: int, names: list[str]) -> None:
        super().__init__(pos, end)
        self.names = names


class _Var(_Node):
    __slots__ = ("name", "fields")

    def __init__(self, pos: int, end: int, name: str, fields: list[str]) -> None:
        super().__init__(pos, end)
        self.name = name
        self.fields = fields


class _Chain(_Node):
    __slots__ = ("node", "fields")

    def __init__(self, pos: int, end: int, node: _Node, fields: list[str]) -> None:
        super().__init__(pos, end)
        self.node = node
        self.fields = fields


class _Ident(_Node):
    __slots__ = ("name",)

    def __init__(self, pos: int, end: int, name: str) -> None:
        super().__init__(pos, end)
        self.name = name


class _Dot(_Node):
    __slots__ = ()


class _Nil(_Node):
    __slots__ = ()


class _Literal(_Node):
    __slots__ = ("value",)

    def __init__(self, pos: int, end: int, value: Any) -> None:
        super().__init__(pos, end)
        self.value = value


class _Command(_Node):
    __slots__ = ("args",)

    def __init__(self, pos: int, end: int, args: list[_Node]) -> None:
        super().__init__(pos, end)
        self.args = args


class _Pipe(_Node):
    __slots__ = ("decl", "is_assign", "cmds")

    def __init__(self, pos: int) -> None:
        super().__init__(pos, pos)
        self.decl: list[str] = []
        self.is_assign = False
        self.cmds: list[_Command] = []


class _Action(_Node):
    __slots__ = ("pipe",)

    def __init__(self, pos: int, pipe: _Pipe) -> None:
        super().__init__(pos, pos)
        self.pipe = pipe


class _Control(_Node):
    __slots__ = ("kind", "pipe", "body", "else_body")

    def __init__(
        self, pos: int, kind: str, pipe: _Pipe, body: list[_Node], else_body: list[_Node] | None
    ) -> None:
        super().__init__(pos, pos)
        self.kind = kind
        self.pipe = pipe
        self.body = body
        self.else_body = else_body


class _TemplateCall(_Node):
    __slots__ = ("name", "pipe")

    def __init__(self, pos: int, name: str, pipe: _Pipe | None) -> None:
        super().__init__(pos, pos)
        self.name = name
        self.pipe = pipe


class _Break(_Node):
    __slots__ = ()


class _Continue(_Node):
    __slots__ = ()


class _End(_Node):
    __slots__ = ()


class _Else(_Node):
    __slots__ = ("chain",)  # "if"/"with" for else-if/else-with, else ""

    def __init__(self, pos: int, chain: str) -> None:
        super().__init__(pos, pos)
        self.chain = chain


# --------------------------------------------------------------------------
# Parser


class _Parser:
    def __init__(self, src: str, funcs: Mapping[str, Any]) -> None:
        self.src = src
        self.funcs = funcs
        self.toks = _lex(src)
        self.i = 0
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.templates: dict[str, list[_Node]] = {}
        self.cur_line = 1

    # token helpers
    def next(self) -> _Tok:
        t = self.toks[self.i]
        if t.typ == _T_ERROR:
            raise self.error(t.val, t.line)
        if self.i < len(self.toks) - 1:
            self.i += 1
        self.cur_line = t.line
        return t

    def backup(self, k: int = 1) -> None:
        self.i -= k

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def next_non_space(self) -> _Tok:
        t = self.next()
        while t.typ == _T_SPACE:
            t = self.next()
        return t

    def peek_non_space(self) -> _Tok:
        t = self.next_non_space()
        self.backup()
        return t

    def error(self, msg: str, line: int | None = None) -> TemplateError:
        return TemplateError(f"template: :{line or self.cur_line}: {msg}")

    def unexpected(self, tok: _Tok, context: str) -> TemplateError:
        if tok.typ == _T_ERROR:
            return self.error(str(tok), tok.line)
        return self.error(f"unexpected {tok} in {context}", tok.line)

    def expect(self, typ: str, context: str) -> _Tok:
        t = self.next_non_space()
        if t.typ != typ:
            raise self.unexpected(t, context)
        return t

    # grammar
    def parse(self) -> tuple[list[_Node], dict[str, list[_Node]]]:
        nodes: list[_Node] = []
        while self.peek().typ != _T_EOF:
            t = self.peek()
            if t.typ == _T_LEFT:
                start = self.i
                self.next()
                nt = self.next_non_space()
                if nt.typ == _T_KEYWORD and nt.val == "define":
                    self.parse_define()
                    continue
                self.i = start
            if t.typ == _T_ERROR:
                raise self.error(t.val, t.line)
            n = self.text_or_action()
            if isinstance(n, _End):
                raise self.error("unexpected {{end}}")
            if isinstance(n, _Else):
                raise self.error("unexpected {{else}}")
            nodes.append(n)
        return nodes, self.templates

    def parse_define(self) -> None:
        name_tok = self.next_non_space()
        if name_tok.typ != _T_STRING:
            raise self.unexpected(name_tok, "define clause")
        name = _unquote(name_tok.val)
        self.expect(_T_RIGHT, "define clause")
        saved = self.vars
        self.vars = ["$"]
        body, end = self.item_list()
        self.vars = saved
        if not isinstance(end, _End):
            raise self.error("unexpected {{else}} in define clause")
        self.templates[name] = body

    def item_list(self) -> tuple[list[_Node], _Node]:
        nodes: list[_Node] = []
        while self.peek_non_space().typ != _T_EOF:
            n = self.text_or_action()
            if isinstance(n, (_End, _Else)):
                return nodes, n
            nodes.append(n)
        raise self.error("unexpected EOF")

    def text_or_action(self) -> _Node:
        t = self.next_non_space()
        if t.typ == _T_TEXT:
            return _Text(t.pos, t.val)
        if t.typ == _T_LEFT:
            return self.action(t)
        raise self.unexpected(t, "input")

    def action(self, left: _Tok) -> _Node:
        t = self.next_non_space()
        if t.typ == _T_KEYWORD:
            kw = t.val
            if kw == "end":
                self.expect(_T_RIGHT, "end")
                return _End(t.pos, t.pos)
            if kw == "else":
                p = self.peek_non_space()
                if p.typ == _T_KEYWORD and p.val in ("if", "with"):
                    return _Else(t.pos, p.val)
                self.expect(_T_RIGHT, "else")
                return _Else(t.pos, "")
            if kw in ("if", "with", "range"):
                return self.control(kw, t)
            if kw in ("break", "continue"):
                if self.range_depth == 0:
                    raise self.error(f"{{{{{kw}}}}} outside {{{{range}}}}")
                self.expect(_T_RIGHT, kw)
                return _Break(t.pos, t.pos) if kw == "break" else _Continue(t.pos, t.pos)
            if kw in ("template", "block"):
                return self.template_call(kw, t)
            if kw == "define":
                raise self.error("unexpected <define> in command")
        self.backup()
        pipe = self.pipeline("command", _T_RIGHT)
        return _Action(left.pos, pipe)

    def template_call(self, kw: str, t: _Tok) -> _Node:
        ctx = f"{kw} clause"
        name_tok = self.next_non_space()
        if name_tok.typ != _T_STRING:
            raise self.unexpected(name_tok, ctx)
        name = _unquote(name_tok.val)
        pipe: _Pipe | None = None
        if self.next_non_space().typ != _T_RIGHT:
            self.backup()
            pipe = self.pipeline(ctx, _T_RIGHT)
        if kw == "block":
            saved = self.vars
            self.vars = ["$"]
            body, end = self.item_list()
            self.vars = saved
            if not isinstance(end, _End):
                raise self.error("unexpected {{else}} in block clause")
            self.templates[name] = body
        return _TemplateCall(t.pos, name, pipe)

    def control(self, kind: str, t: _Tok) -> _Node:
        nvars = len(self.vars)
        try:
            pipe = self.pipeline(kind, _T_RIGHT)
            if kind == "range":
                self.range_depth += 1
            body, nxt = self.item_list()
            if kind == "range":
                self.range_depth -= 1
            else_body: list[_Node] | None = None
            if isinstance(nxt, _Else):
                if nxt.chain and nxt.chain == kind and kind in ("if", "with"):
                    kt = self.next_non_space()  # the if/with keyword
                    else_body = [self.control(kind, kt)]
                elif nxt.chain:
                    raise self.error(f"unexpected <{nxt.chain}> in else")
                else:
                    else_body, end = self.item_list()
                    if not isinstance(end, _End):
                        raise self.error("expected end; found {{else}}")
            return _Control(t.pos, kind, pipe, body, else_body)
        finally:
            del self.vars[nvars:]

    def pipeline(self, context: str, end: str) -> _Pipe:
        pipe = _Pipe(self.peek_non_space().pos)
        # declarations
        while True:
            v = self.peek_non_space()
            if v.typ != _T_VAR:
                break
            start = self.i
            self.next_non_space()
            nxt = self.next_non_space()
            if nxt.typ in (_T_DECLARE, _T_ASSIGN):
                pipe.is_assign = nxt.typ == _T_ASSIGN
                pipe.decl.append(v.val)
                self.vars.append(v.val)
                break
            if nxt.typ == _T_CHAR and nxt.val == ",":
                pipe.decl.append(v.val)
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (_T_VAR, _T_RIGHT, _T_RPAREN):
                        continue
                    raise self.error("range can only initialize variables")
                raise self.error(f"too many declarations in {context}")
            self.i = start
            break
        while True:
            tok = self.next_non_space()
            if tok.typ == end:
                if not pipe.cmds:
                    raise self.error(f"missing value for {context}")
                for k, c in enumerate(pipe.cmds[1:]):
                    if isinstance(c.args[0], (_Literal, _Dot, _Nil)):
                        raise self.error(f"non executable command in pipeline stage {k + 2}")
                pipe.end = tok.pos
                return pipe
            if tok.typ in (
                _T_BOOL,
                _T_CHARCONST,
                _T_DOT,
                _T_FIELD,
                _T_IDENT,
                _T_NUMBER,
                _T_NIL,
                _T_STRING,
                _T_VAR,
                _T_LPAREN,
            ):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                raise self.unexpected(tok, context)

    def command(self) -> _Command:
        start = self.peek_non_space().pos
        args: list[_Node] = []
        while True:
            self.peek_non_space()  # skip leading spaces
            op = self.operand()
            if op is not None:
                args.append(op)
            tok = self.next()
            if tok.typ == _T_SPACE:
                continue
            if tok.typ in (_T_RIGHT, _T_RPAREN):
                self.backup()
            elif tok.typ == _T_PIPE:
                pass
            else:
                raise self.unexpected(tok, "operand")
            break
        if not args:
            raise self.error("empty command")
        return _Command(start, args[-1].end, args)

    def operand(self) -> _Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == _T_FIELD:
            fields: list[str] = []
            end = node.end
            while self.peek().typ == _T_FIELD:
                ft = self.next()
                fields.extend(ft.val[1:].split("."))
                end = ft.pos + len(ft.val)
            if isinstance(node, _Field):
                return _Field(node.pos, end, node.names + fields)
            if isinstance(node, _Var):
                return _Var(node.pos, end, node.name, node.fields + fields)
            if isinstance(node, (_Literal, _Nil, _Dot)):
                raise self.error(
                    f"unexpected . after term {_go_quote(self.src[node.pos : node.end])}"
                )
            return _Chain(node.pos, end, node, fields)
        return node

    def term(self) -> _Node | None:
        t = self.next_non_space()
        end = t.pos + len(t.val)
        typ = t.typ
        if typ == _T_IDENT:
            if t.val not in self.funcs:
                raise self.error(f"function {_go_quote(t.val)} not defined", t.line)
            return _Ident(t.pos, end, t.val)
        if typ == _T_DOT:
            return _Dot(t.pos, end)
        if typ == _T_NIL:
            return _Nil(t.pos, end)
        if typ == _T_VAR:
            if t.val not in self.vars:
                raise self.error(f"undefined variable {_go_quote(t.val)}", t.line)
            return _Var(t.pos, end, t.val, [])
        if typ == _T_FIELD:
            return _Field(t.pos, end, [t.val[1:]])
        if typ == _T_BOOL:
            return _Literal(t.pos, end, t.val == "true")
        if typ in (_T_NUMBER, _T_CHARCONST):
            return _Literal(t.pos, end, self.number(t))
        if typ == _T_LPAREN:
            pipe = self.pipeline("parenthesized pipeline", _T_RPAREN)
            pipe.pos = t.pos
            pipe.end = pipe.end + 1
            return pipe
        if typ == _T_STRING:
            try:
                return _Literal(t.pos, end, _unquote(t.val))
            except ValueError as e:
                raise self.error(str(e), t.line) from None
        if typ == _T_ERROR:
            raise self.error(t.val, t.line)
        self.backup()
        return None

    def number(self, t: _Tok) -> int | float:
        s = t.val
        if t.typ == _T_CHARCONST:
            body = _unquote('"' + s[1:-1].replace('"', '\\"') + '"')
            if len(body) != 1:
                raise self.error(f"malformed character constant: {s}", t.line)
            return ord(body)
        clean = s.replace("_", "")
        if clean.endswith("i"):
            raise self.error(f"complex numbers are not supported: {s}", t.line)
        sign = ""
        digits = clean
        if digits[:1] in "+-":
            sign, digits = digits[0], digits[1:]
        try:
            if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
                return int(sign + digits, 8)
            return int(sign + digits, 0)
        except ValueError:
            pass
        try:
            if digits[:2].lower() == "0x":
                return float.fromhex(sign + digits)
            return float(sign + digits)
        except ValueError:
            raise self.error(f"illegal number syntax: {_go_quote(s)}", t.line) from None


_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
}


def _unquote(s: str) -> str:
    if s.startswith("`"):
        return s[1:-1].replace("\r", "")
    body = s[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1 : i + 2]
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
        elif e in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[e]
            hexs = body[i + 2 : i + 2 + width]
            if len(hexs) != width:
                raise ValueError("invalid syntax")
            out.append(chr(int(hexs, 16)))
            i += 2 + width
        elif e and e in "01234567":
            out.append(chr(int(body[i + 1 : i + 4], 8)))
            i += 4
        else:
            raise ValueError("invalid syntax")
    return "".join(out)


# --------------------------------------------------------------------------
# Value formatting (Go's fmt %v)


def _go_type(v: Any) -> str:
    if v is None or v is MISSING:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, Mapping):
        return "map[string]interface {}"
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, str) for x in v):
            return "[]string"
        return "[]interface {}"
    return type(v).__name__


def _float_digits(f: float) -> tuple[str, int]:
    """Shortest decimal digits of abs(f) and the decimal point position."""
    r = repr(abs(f))
    exp = 0
    if "e" in r:
        r, e = r.split("e")
        exp = int(e)
    if "." in r:
        ip, fp = r.split(".")
    else:
        ip, fp = r, ""
    digits = ip + fp
    dp = len(ip) + exp
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    if not digits:
        return "0", 1
    return digits, dp


def _fmt_e(neg: bool, digits: str, dp: int, upper: bool = False) -> str:
    exp = dp - 1
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    e = "E" if upper else "e"
    sign = "-" if exp < 0 else "+"
    return f"{'-' if neg else ''}{mant}{e}{sign}{abs(exp):02d}"


def _fmt_f(neg: bool, digits: str, dp: int) -> str:
    if dp <= 0:
        s = "0." + "0" * (-dp) + digits
    elif dp >= len(digits):
        s = digits + "0" * (dp - len(digits))
    else:
        s = digits[:dp] + "." + digits[dp:]
    return ("-" if neg else "") + s


def _go_float(f: float, eprec: int = 6) -> str:
    """strconv.FormatFloat(f, 'g', -1, 64) as fmt's %v prints it."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    neg = f < 0 or (f == 0 and str(f).startswith("-"))
    if f == 0:
        return "-0" if neg else "0"
    digits, dp = _float_digits(f)
    exp = dp - 1
    if exp < -4 or exp >= max(eprec, 0):
        return _fmt_e(neg, digits, dp)
    return _fmt_f(neg, digits, dp)


def _fmt_v(v: Any) -> str:
    if isinstance(v, str):
        return v
    if v is None or v is MISSING:
        return "<nil>"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, Mapping):
        items = sorted(v.items(), key=lambda kv: _sort_key(kv[0]))
        return "map[" + " ".join(f"{_fmt_v(k)}:{_fmt_v(x)}" for k, x in items) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(_fmt_v(x) for x in v) + "]"
    return str(v)


def _sort_key(k: Any) -> tuple[int, Any]:
    if isinstance(k, (int, float)) and not isinstance(k, bool):
        return (0, k)
    return (1, str(k))


def _print_value(v: Any) -> str:
    if v is MISSING:
        return "<no value>"
    return _fmt_v(v)


def _go_quote(s: str, quote: str = '"') -> str:
    """strconv.Quote."""
    out = [quote]
    for c in s:
        o = ord(c)
        if c == quote or c == "\\":
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif c == "\a":
            out.append("\\a")
        elif c == "\b":
            out.append("\\b")
        elif c == "\f":
            out.append("\\f")
        elif c == "\v":
            out.append("\\v")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif c.isprintable():
            out.append(c)
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append(quote)
    return "".join(out)


# --------------------------------------------------------------------------
# JSON like Go's encoding/json (docker's json func: SetEscapeHTML(false))


def _json_float(f: float) -> str:
    if f != f or f in (float("inf"), float("-inf")):
        raise ValueError(f"json: unsupported value: {_go_float(f)}")
    if f == 0:
        return "-0" if str(f).startswith("-") else "0"
    neg = f < 0
    digits, dp = _float_digits(f)
    a = abs(f)
    if a < 1e-6 or a >= 1e21:
        s = _fmt_e(neg, digits, dp)
        if len(s) >= 4 and s[-4] == "e" and s[-3] == "-" and s[-2] == "0":
            s = s[:-2] + s[-1]
        return s
    return _fmt_f(neg, digits, dp)


def _json_str(s: str) -> str:
    out = ['"']
    for c in s:
        o = ord(c)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif o < 0x20:
            out.append(
                {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}.get(
                    c, f"\\u{o:04x}"
                )
            )
        elif o in (0x2028, 0x2029):
            out.append(f"\\u{o:04x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def go_json(v: Any) -> str:
    """Compact JSON as Go's json.Encoder with SetEscapeHTML(false)."""
    if v is None or v is MISSING:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _json_float(v)
    if isinstance(v, str):
        return _json_str(v)
    if isinstance(v, Mapping):
        return "{" + ",".join(f"{_json_str(str(k))}:{go_json(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(go_json(x) for x in v) + "]"
    raise ValueError(f"json: unsupported type: {type(v).__name__}")


# --------------------------------------------------------------------------
# printf


_VERB_RE = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d*))?(.)?", re.S)


def _bad_verb(verb: str, v: Any) -> str:
    if v is None or v is MISSING:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({_go_type(v)}={_fmt_v(v)})"


def _pad(s: str, flags: str, width: int | None, numeric: bool = False) -> str:
    if width is None or len(s) >= width:
        return s
    if "-" in flags:
        return s + " " * (width - len(s))
    if "0" in flags and numeric:
        sign = s[0] if s[:1] in "+-" else ""
        body = s[len(sign) :]
        return sign + "0" * (width - len(s)) + body
    return " " * (width - len(s)) + s


def _fmt_one(verb: str, flags: str, width: int | None, prec: int | None, v: Any) -> str:
    if v is MISSING:
        v = None
    if isinstance(v, (list, tuple)) and verb not in ("v", "T", "q"):
        return "[" + " ".join(_fmt_one(verb, flags, width, prec, x) for x in v) + "]"
    if isinstance(v, Mapping) and verb != "T":
        items = sorted(v.items(), key=lambda kv: _sort_key(kv[0]))
        return (
            "map["
            + " ".join(
                f"{_fmt_one(verb, flags, width, prec, k)}:{_fmt_one(verb, flags, width, prec, x)}"
                for k, x in items
            )
            + "]"
        )
    is_int = isinstance(v, int) and not isinstance(v, bool)
    if verb == "v":
        if isinstance(v, str) and prec is not None:
            v = v[:prec]
        if isinstance(v, (list, tuple)):
            s = "[" + " ".join(_fmt_one("v", flags, None, prec, x) for x in v) + "]"
        elif is_int and "+" in flags:
            s = f"{v:+d}"
        else:
            s = _fmt_v(v)
        return _pad(s, flags, width, numeric=is_int or isinstance(v, float))
    if verb == "T":
        return _pad(_go_type(v), flags, width)
    if verb == "s":
        if isinstance(v, str):
            return _pad(v if prec is None else v[:prec], flags, width)
        return _bad_verb(verb, v)
    if verb == "q":
        if isinstance(v, str):
            return _pad(_go_quote(v), flags, width)
        if is_int:
            return _pad(_go_quote(chr(v), "'"), flags, width)
        if isinstance(v, (list, tuple)):
            return "[" + " ".join(_fmt_one("q", flags, width, prec, x) for x in v) + "]"
        return _bad_verb(verb, v)
    if verb == "t":
        if isinstance(v, bool):
            return _pad("true" if v else "false", flags, width)
        return _bad_verb(verb, v)
    if verb in "dboxXcU":
        if is_int:
            if verb == "c":
                return _pad(chr(v), flags, width)
            if verb == "U":
                return _pad(f"U+{v:04X}", flags, width)
            spec = {"d": "d", "b": "b", "o": "o", "x": "x", "X": "X"}[verb]
            sign = "+" if "+" in flags else (" " if " " in flags else "")
            alt = "#" if "#" in flags and verb in "boxX" else ""
            s = format(v, f"{sign}{alt}{spec}")
            return _pad(s, flags, width, numeric=True)
        if isinstance(v, str) and verb in "xX":
            h = v.encode().hex()
            return _pad(h.upper() if verb == "X" else h, flags, width)
        return _bad_verb(verb, v)
    if verb in "eEfFgG":
        if isinstance(v, float):
            f = v
            sign = "+" if "+" in flags else (" " if " " in flags else "")
            if verb in "gG" and prec is None:
                s = _go_float(f)
                if verb == "G":
                    s = s.upper()
                if f >= 0 and sign and not s.startswith("-"):
                    s = sign + s
            else:
                p = 6 if prec is None else prec
                s = format(f, f"{sign}.{p}{verb}")
            return _pad(s, flags, width, numeric=True)
        return _bad_verb(verb, v)
    return _bad_verb(verb, v)


def go_sprintf(fmt: str, *args: Any) -> str:
    """Go's fmt.Sprintf for the common verbs."""
    out: list[str] = []
    argi = 0
    pos = 0
    n = len(fmt)
    while pos < n:
        j = fmt.find("%", pos)
        if j < 0:
            out.append(fmt[pos:])
            break
        out.append(fmt[pos:j])
        m = _VERB_RE.match(fmt, j)
        assert m is not None
        flags, width_s, prec_s, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        pos = m.end()
        if verb is None:
            out.append("%!(NOVERB)")
            break
        if verb == "%":
            out.append("%")
            continue
        width: int | None = None
        prec: int | None = None
        if width_s == "*":
            if argi < len(args) and isinstance(args[argi], int):
                width = args[argi]
                if width < 0:
                    flags += "-"
                    width = -width
            else:
                out.append("%!(BADWIDTH)")
            argi += 1
        elif width_s:
            width = int(width_s)
        if prec_s == "*":
            if argi < len(args) and isinstance(args[argi], int):
                prec = args[argi]
            else:
                out.append("%!(BADPREC)")
            argi += 1
        elif prec_s is not None:
            prec = int(prec_s) if prec_s else 0
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_fmt_one(verb, flags, width, prec, args[argi]))
        argi += 1
    if argi < len(args):
        extra = ", ".join(
            "<nil>" if a is None or a is MISSING else f"{_go_type(a)}={_fmt_v(a)}"
            for a in args[argi:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def go_sprint(*args: Any) -> str:
    out: list[str] = []
    prev_str = False
    for k, a in enumerate(args):
        is_str = isinstance(a, str)
        if k > 0 and not is_str and not prev_str:
            out.append(" ")
        out.append(_fmt_v(a))
        prev_str = is_str
    return "".join(out)


def go_sprintln(*args: Any) -> str:
    return " ".join(_fmt_v(a) for a in args) + "\n"


# --------------------------------------------------------------------------
# Functions


class _FuncError(Exception):
    pass


def _truth(v: Any) -> bool:
    if v is None or v is MISSING:
        return False
    if isinstance(v, (bool, int, float, str, list, tuple, Mapping)):
        return bool(v)
    return True


def _kind(v: Any) -> str:
    if v is None or v is MISSING:
        return "invalid"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return "other"


def _eq(a: Any, *bs: Any) -> bool:
    if not bs:
        raise _FuncError("missing argument for comparison")
    ka = _kind(a)
    for b in bs:
        kb = _kind(b)
        if ka != kb:
            if ka != "invalid" and kb != "invalid":
                raise _FuncError("incompatible types for comparison")
            continue
        if ka == "other":
            raise _FuncError(f"non-comparable type {_fmt_v(b)}: {_go_type(b)}")
        if ka == "invalid" or a == b:
            return True
    return False


def _ne(a: Any, b: Any) -> bool:
    return not _eq(a, b)


def _lt(a: Any, b: Any) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka not in ("number", "string") or kb not in ("number", "string"):
        raise _FuncError("invalid type for comparison")
    if ka != kb:
        raise _FuncError("incompatible types for comparison")
    return bool(a < b)


def _le(a: Any, b: Any) -> bool:
    return _lt(a, b) or _eq(a, b)


def _gt(a: Any, b: Any) -> bool:
    return not _le(a, b)


def _ge(a: Any, b: Any) -> bool:
    return not _lt(a, b)


def _not(a: Any) -> bool:
    return not _truth(a)


def _len(v: Any) -> int:
    if v is None or v is MISSING:
        raise _FuncError("len of nil pointer")
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, (list, tuple, Mapping)):
        return len(v)
    raise _FuncError(f"len of type {_go_type(v)}")


def _index_int(i: Any) -> int:
    if isinstance(i, int) and not isinstance(i, bool):
        return i
    raise _FuncError(f"cannot index slice/array with type {_go_type(i)}")


def _index(item: Any, *indexes: Any) -> Any:
    for ix in indexes:
        if item is MISSING:
            raise _FuncError("index of untyped nil")
        if item is None:
            raise _FuncError("index of nil pointer")
        if isinstance(item, Mapping):
            if not isinstance(ix, str) and item and isinstance(next(iter(item)), str):
                raise _FuncError(f"value has type {_go_type(ix)}; should be string")
            if ix in item:
                item = item[ix]
            elif all(isinstance(x, str) for x in item.values()):
                # a map[string]string (Labels, Options, ...): Go's zero value ""
                item = ""
            else:
                item = MISSING
        elif isinstance(item, (list, tuple, str)):
            i = _index_int(ix)
            if i < 0 or i >= len(item if not isinstance(item, str) else item.encode()):
                raise _FuncError(f"index out of range: {i}")
            item = item.encode()[i] if isinstance(item, str) else item[i]
        else:
            raise _FuncError(f"can't index item of type {_go_type(item)}")
    return item


def _slice(item: Any, *idx: Any) -> Any:
    if item is None or item is MISSING:
        raise _FuncError("slice of untyped nil")
    if len(idx) > 3:
        raise _FuncError(f"too many slice indexes: {len(idx)}")
    if not isinstance(item, (str, list, tuple)):
        raise _FuncError(f"can't slice item of type {_go_type(item)}")
    if isinstance(item, str) and len(idx) == 3:
        raise _FuncError("cannot 3-index slice a string")
    n = len(item.encode()) if isinstance(item, str) else len(item)
    ints = [_index_int(i) for i in idx]
    for i in ints:
        if i < 0 or i > n:
            raise _FuncError(f"index out of range: {i}")
    lo = ints[0] if ints else 0
    hi = ints[1] if len(ints) > 1 else n
    if lo > hi:
        raise _FuncError(f"invalid slice index: {lo} > {hi}")
    if isinstance(item, str):
        return item.encode()[lo:hi].decode(errors="replace")
    return list(item[lo:hi])


def _html(*args: Any) -> str:
    s = _eval_args_str(args)
    return (
        s.replace("&", "&amp;")
        .replace("'", "&#39;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("\0", "\ufffd")
    )


def _js(*args: Any) -> str:
    s = _eval_args_str(args)
    out: list[str] = []
    for c in s:
        if c in "\\'\"":
            out.append("\\" + c)
        elif c in "<>&=" or ord(c) < 0x20:
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


def _urlquery(*args: Any) -> str:
    from urllib.parse import quote_plus

    return quote_plus(_eval_args_str(args))


def _eval_args_str(args: Sequence[Any]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return go_sprint(*args)


def _json(v: Any) -> str:
    try:
        return go_json(v)
    except ValueError:
        return ""


def _split(s: str, sep: str) -> list[str]:
    if sep == "":
        return list(s)
    return s.split(sep)


def _join(elems: list[str], sep: str) -> str:
    return sep.join(elems)


def _title(s: str) -> str:
    out: list[str] = []
    prev = " "
    for c in s:
        if _is_separator(prev):
            out.append(c.upper() if len(c.upper()) == 1 else c.title())
        else:
            out.append(c)
        prev = c
    return "".join(out)


def _is_separator(c: str) -> bool:
    if ord(c) <= 0x7F:
        return not (c.isalnum() or c == "_")
    if c.isalpha() or c.isdigit():
        return False
    return c.isspace()


def _padfn(s: str, prefix: int, suffix: int) -> str:
    if s == "":
        return s
    return " " * prefix + s + " " * suffix


def _truncate(s: str, length: int) -> str:
    if len(s) < length:
        return s
    return s[:length]


def _identity(v: Any, *_: Any) -> Any:
    return v


# name -> (callable, param kinds or None for any/variadic-any, min args, variadic)
# kinds: "a" any, "s" string, "i" int, "S" []string
_FuncSpec = tuple[Callable[..., Any], str, bool]

_BUILTINS: dict[str, _FuncSpec] = {
    "and": (_identity, "aa", True),
    "or": (_identity, "aa", True),
    "not": (_not, "a", False),
    "len": (_len, "a", False),
    "index": (_index, "a", True),
    "slice": (_slice, "a", True),
    "print": (go_sprint, "", True),
    "printf": (go_sprintf, "s", True),
    "println": (go_sprintln, "", True),
    "eq": (_eq, "a", True),
    "ne": (_ne, "aa", False),
    "lt": (_lt, "aa", False),
    "le": (_le, "aa", False),
    "gt": (_gt, "aa", False),
    "ge": (_ge, "aa", False),
    "html": (_html, "", True),
    "js": (_js, "", True),
    "urlquery": (_urlquery, "", True),
    "call": (_identity, "a", True),
    # docker/cli templates.basicFunctions
    "json": (_json, "a", False),
    "split": (_split, "ss", False),
    "join": (_join, "Ss", False),
    "title": (_title, "s", False),
    "lower": (str.lower, "s", False),
    "upper": (str.upper, "s", False),
    "pad": (_padfn, "sii", False),
    "truncate": (_truncate, "si", False),
}

# docker/cli templates.HeaderFunctions: keep the header text intact.
_HEADER_FUNCS: dict[str, _FuncSpec] = dict(_BUILTINS)
_HEADER_FUNCS.update(
    {
        "json": (_identity, "s", False),
        "split": (_identity, "ss", False),
        "join": (_identity, "ss", False),
        "title": (_identity, "s", False),
        "lower": (_identity, "s", False),
        "upper": (_identity, "s", False),
        "truncate": (_identity, "si", False),
    }
)


def _check_arg(kind: str, v: Any) -> Any:
    if kind == "a":
        return None if v is MISSING else v
    if v is MISSING:
        want = {"s": "string", "i": "int", "S": "[]string"}[kind]
        raise _FuncError(f"invalid value; expected {want}")
    if kind == "s":
        if isinstance(v, str):
            return v
        raise _FuncError(f"wrong type for value; expected string; got {_wrong(v)}")
    if kind == "i":
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if isinstance(v, float) and v.is_integer():
            return int(v)
        raise _FuncError(f"wrong type for value; expected int; got {_wrong(v)}")
    if kind == "S":
        if isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v):
            return list(v)
        raise _FuncError(f"wrong type for value; expected []string; got {_wrong(v)}")
    return v


def _wrong(v: Any) -> str:
    return "interface {}" if v is None else _go_type(v)


# --------------------------------------------------------------------------
# Executor


class _Break_(Exception):
    pass


class _Continue_(Exception):
    pass


class _ExecError(Exception):
    def __init__(self, node: _Node | None, msg: str) -> None:
        super().__init__(msg)
        self.node = node
        self.msg = msg


_MAX_DEPTH = 1000


class Template:
    """A parsed template; call :meth:`execute`."""

    def __init__(self, src: str, funcs: dict[str, _FuncSpec]) -> None:
        self.src = src
        self.funcs = funcs
        self.root, self.templates = _Parser(src, funcs).parse()

    def execute(self, data: Any, partial: bool = False) -> str:
        """Run the template on *data*.

        On an execution error raise :class:`TemplateError`, or with
        *partial* return what was written before the error (as Go's
        ``Execute`` leaves it in the writer).
        """
        st = _State(self, data)
        try:
            st.walk_list(data, self.root)
        except _ExecError as e:
            if not partial:
                raise TemplateError(self._exec_msg(e)) from None
        return "".join(st.out)

    def _exec_msg(self, e: _ExecError) -> str:
        node = e.node
        if node is None:
            return f'template: : executing "": {e.msg}'
        pos = node.pos
        before = self.src[:pos]
        nl = before.rfind("\n")
        col = pos if nl < 0 else pos - nl - 1
        line = 1 + before.count("\n")
        ctx = self.src[node.pos : node.end].strip() if node.end > node.pos else ""
        if len(ctx) > 20:
            ctx = ctx[:17] + "..."
        return f'template: :{line}:{col}: executing "" at <{ctx}>: {e.msg}'


class _State:
    def __init__(self, tmpl: Template, data: Any) -> None:
        self.tmpl = tmpl
        self.out: list[str] = []
        self.vars: list[tuple[str, Any]] = [("$", data)]
        self.depth = 0

    # variables
    def lookup(self, node: _Node, name: str) -> Any:
        for k in range(len(self.vars) - 1, -1, -1):
            if self.vars[k][0] == name:
                return self.vars[k][1]
        raise _ExecError(node, f"undefined variable: {name}")

    def assign(self, node: _Node, name: str, value: Any) -> None:
        for k in range(len(self.vars) - 1, -1, -1):
            if self.vars[k][0] == name:
                self.vars[k] = (name, value)
                return
        raise _ExecError(node, f"undefined variable: {name}")

    # walking
    def walk_list(self, dot: Any, nodes: list[_Node]) -> None:
        for n in nodes:
            self.walk(dot, n)

    def walk(self, dot: Any, node: _Node) -> None:
        if isinstance(node, _Text):
            self.out.append(node.text)
        elif isinstance(node, _Action):
            val = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.out.append(_print_value(val))
        elif isinstance(node, _Control):
            if node.kind == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_with(dot, node)
        elif isinstance(node, _TemplateCall):
            self.walk_template(dot, node)
        elif isinstance(node, _Break):
            raise _Break_
        elif isinstance(node, _Continue):
            raise _Continue_

    def walk_if_with(self, dot: Any, node: _Control) -> None:
        mark = len(self.vars)
        try:
            val = self.eval_pipeline(dot, node.pipe)
            if _truth(val):
                self.walk_list(val if node.kind == "with" else dot, node.body)
            elif node.else_body is not None:
                self.walk_list(dot, node.else_body)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot: Any, node: _Control) -> None:
        mark = len(self.vars)
        try:
            val = self.eval_pipeline(dot, node.pipe)
            decl = node.pipe.decl
            items: list[tuple[Any, Any]]
            if val is None or val is MISSING:
                items = []
            elif isinstance(val, Mapping):
                items = [(k, val[k]) for k in sorted(val, key=_sort_key)]
            elif isinstance(val, (list, tuple)):
                items = list(enumerate(val))
            elif isinstance(val, int) and not isinstance(val, bool):
                if len(decl) > 1:
                    raise _ExecError(
                        node.pipe,
                        f"can't use {val} to iterate over more than one variable",
                    )
                items = [(i, i) for i in range(val)]
            else:
                raise _ExecError(node.pipe, f"range can't iterate over {_fmt_v(val)}")
            if not items:
                if node.else_body is not None:
                    self.walk_list(dot, node.else_body)
                return
            for key, elem in items:
                if decl:
                    if node.pipe.is_assign:
                        if len(decl) > 1:
                            self.assign(node.pipe, decl[0], key)
                            self.assign(node.pipe, decl[1], elem)
                        else:
                            self.assign(node.pipe, decl[0], elem)
                    elif len(decl) > 1:
                        self.vars[-2] = (decl[0], key)
                        self.vars[-1] = (decl[1], elem)
                    else:
                        self.vars[-1] = (decl[0], elem)
                inner = len(self.vars)
                try:
                    self.walk_list(elem, node.body)
                except _Continue_:
                    pass
                except _Break_:
                    break
                finally:
                    del self.vars[inner:]
        finally:
            del self.vars[mark:]

    def walk_template(self, dot: Any, node: _TemplateCall) -> None:
        body = self.tmpl.templates.get(node.name)
        if body is None:
            raise _ExecError(node, f"no such template {_go_quote(node.name)}")
        if self.depth >= _MAX_DEPTH:
            raise _ExecError(node, f"exceeded maximum template depth ({_MAX_DEPTH})")
        newdot = None if node.pipe is None else self.eval_pipeline(dot, node.pipe)
        saved = self.vars
        self.vars = [("$", newdot)]
        self.depth += 1
        try:
            self.walk_list(newdot, body)
        finally:
            self.depth -= 1
            self.vars = saved

    # evaluation
    def eval_pipeline(self, dot: Any, pipe: _Pipe) -> Any:
        value: Any = MISSING
        final: Any = _NOFINAL
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, final)
            final = value
        for name in pipe.decl:
            if pipe.is_assign:
                self.assign(pipe, name, value)
            else:
                self.vars.append((name, value))
        return value

    def eval_command(self, dot: Any, cmd: _Command, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, _Field):
            return self.eval_field_chain(dot, dot, first, first.names, cmd.args, final)
        if isinstance(first, _Chain):
            return self.eval_chain(dot, first, cmd.args, final)
        if isinstance(first, _Ident):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, _Pipe):
            self.not_a_function(first, cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, _Var):
            return self.eval_variable(dot, first, cmd.args, final)
        self.not_a_function(first, cmd.args, final)
        if isinstance(first, _Dot):
            return dot
        if isinstance(first, _Nil):
            raise _ExecError(first, "nil is not a command")
        if isinstance(first, _Literal):
            return first.value
        raise _ExecError(first, "can't evaluate command")

    def not_a_function(self, node: _Node, args: list[_Node], final: Any) -> None:
        if len(args) > 1 or final is not _NOFINAL:
            ctx = self.tmpl.src[node.pos : node.end]
            raise _ExecError(node, f"can't give argument to non-function {ctx}")

    def eval_variable(self, dot: Any, var: _Var, args: list[_Node], final: Any) -> Any:
        value = self.lookup(var, var.name)
        if not var.fields:
            self.not_a_function(var, args, final)
            return value
        return self.eval_field_chain(dot, value, var, var.fields, args, final)

    def eval_chain(self, dot: Any, chain: _Chain, args: list[_Node], final: Any) -> Any:
        if isinstance(chain.node, _Pipe):
            recv = self.eval_pipeline(dot, chain.node)
        else:
            recv = self.eval_arg(dot, chain.node)
        return self.eval_field_chain(dot, recv, chain, chain.fields, args, final)

    def eval_field_chain(
        self, dot: Any, recv: Any, node: _Node, names: list[str], args: list[_Node], final: Any
    ) -> Any:
        for name in names[:-1]:
            recv = self.eval_field(node, name, recv, False)
        has_args = len(args) > 1 or final is not _NOFINAL
        return self.eval_field(node, names[-1], recv, has_args)

    def eval_field(self, node: _Node, name: str, recv: Any, has_args: bool) -> Any:
        if recv is MISSING:
            return MISSING
        if recv is None:
            raise _ExecError(node, f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(recv, Mapping):
            if has_args:
                raise _ExecError(node, f"{name} is not a method but has arguments")
            return recv.get(name, MISSING)
        if not isinstance(recv, (str, int, float, list, tuple)) and not name.startswith("_"):
            # struct-like object (dataclass, msgspec.Struct, ...): attribute access
            try:
                value = getattr(recv, name)
            except AttributeError:
                pass
            else:
                if callable(value):
                    raise _ExecError(node, f"can't evaluate field {name} in type {_go_type(recv)}")
                if has_args:
                    raise _ExecError(node, f"{name} is not a method but has arguments")
                return value
        raise _ExecError(node, f"can't evaluate field {name} in type {_go_type(recv)}")

    def eval_arg(self, dot: Any, node: _Node) -> Any:
        if isinstance(node, _Dot):
            return dot
        if isinstance(node, _Nil):
            return None
        if isinstance(node, _Field):
            return self.eval_field_chain(dot, dot, node, node.names, [node], _NOFINAL)
        if isinstance(node, _Var):
            return self.eval_variable(dot, node, [node], _NOFINAL)
        if isinstance(node, _Pipe):
            return self.eval_pipeline(dot, node)
        if isinstance(node, _Ident):
            return self.eval_function(dot, node, node, [node], _NOFINAL)
        if isinstance(node, _Chain):
            return self.eval_chain(dot, node, [node], _NOFINAL)
        if isinstance(node, _Literal):
            return node.value
        raise _ExecError(node, "can't handle argument")

    def eval_function(
        self, dot: Any, ident: _Ident, cmd: _Node, args: list[_Node], final: Any
    ) -> Any:
        name = ident.name
        fn, kinds, variadic = self.tmpl.funcs[name]
        argnodes = args[1:]
        nargs = len(argnodes) + (final is not _NOFINAL)
        if name in ("and", "or"):
            if nargs < 1:
                raise _ExecError(cmd, f"wrong number of args for {name}: want at least 1 got 0")
            val: Any = MISSING
            for a in argnodes:
                val = self.eval_arg(dot, a)
                if _truth(val) != (name == "and"):
                    return val
            if final is not _NOFINAL:
                val = final
            return val
        if name == "call":
            raise _ExecError(cmd, "error calling call: functions are not supported")
        nfixed = len(kinds)
        if variadic:
            if nargs < nfixed:
                raise _ExecError(
                    cmd, f"wrong number of args for {name}: want at least {nfixed} got {nargs}"
                )
        elif nargs != nfixed:
            raise _ExecError(cmd, f"wrong number of args for {name}: want {nfixed} got {nargs}")
        vals = [self.eval_arg(dot, a) for a in argnodes]
        if final is not _NOFINAL:
            vals.append(final)
        try:
            conv = [_check_arg(kinds[k] if k < nfixed else "a", v) for k, v in enumerate(vals)]
        except _FuncError as e:
            raise _ExecError(cmd, str(e)) from None
        try:
            return fn(*conv)
        except _FuncError as e:
            raise _ExecError(cmd, f"error calling {name}: {e}") from None
        except (TypeError, ValueError, IndexError, KeyError, OverflowError) as e:
            raise _ExecError(cmd, f"error calling {name}: {e}") from None


_NOFINAL: Any = object()

_CACHE: dict[tuple[str, bool], Template] = {}


def compile_template(template: str, header: bool = False) -> Template:
    """Parse (and cache) *template*; raises :class:`TemplateError`."""
    key = (template, header)
    t = _CACHE.get(key)
    if t is None:
        t = Template(template, _HEADER_FUNCS if header else _BUILTINS)
        if len(_CACHE) > 256:
            _CACHE.clear()
        _CACHE[key] = t
    return t


def render(template: str, data: object) -> str:
    """Execute Go template *template* against JSON-like *data*."""
    return compile_template(template).execute(data)


def _default_header(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).upper()


class _HeaderMap(dict):  # type: ignore[type-arg]
    def get(self, key: Any, default: Any = None) -> Any:
        if key in self:
            return self[key]
        return _default_header(str(key))


def render_header(template: str, headers: Mapping[str, str] | None = None) -> str:
    """Render the header row of a ``table`` format, like docker/cli does.

    The template runs with docker's HeaderFunctions (json/upper/... pass the
    header through) against *headers* (field name -> column title, e.g.
    ``{"ID": "CONTAINER ID"}``); unknown fields get their name upper-cased,
    camel case split into words (``RunningFor`` -> ``RUNNING FOR``).
    """
    return compile_template(template, header=True).execute(_HeaderMap(headers or {}), partial=True)


def parse_table(fmt: str) -> tuple[bool, str]:
    """docker/cli formatter.Context.preFormat.

    Returns (is_table, template): strips a leading ``table``, maps the
    ``json`` format to ``{{json .}}``, trims spaces and turns literal
    ``\\t`` / ``\\n`` into tab / newline.
    """
    is_table = fmt.startswith("table")
    if is_table:
        fmt = fmt[len("table") :]
    elif fmt == "json":
        fmt = "{{json .}}"
    fmt = fmt.strip(" ")
    fmt = fmt.replace("\\t", "\t").replace("\\n", "\n")
    return is_table, fmt


# --------------------------------------------------------------------------
# tabwriter (docker/cli's fork of text/tabwriter, padchar ' ', flags 0)


def _text_width(s: str) -> int:
    if s.isascii():
        return len(s)
    import unicodedata

    w = 0
    for c in s:
        if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf"):
            continue
        w += 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1
    return w


def tabwrite(
    data: str | Sequence[Sequence[str]],
    minwidth: int = 10,
    padding: int = 3,
) -> str:
    """Align tab-terminated cells like ``tabwriter.NewWriter(out, minwidth, 1, padding, ' ', 0)``.

    *data* is either text (cells terminated by ``\\t``, lines by ``\\n``) or
    rows of cells (joined with ``\\t``, each row ending in ``\\n``).
    """
    if not isinstance(data, str):
        data = "".join("\t".join(row) + "\n" for row in data)
    lines = [ln.split("\t") for ln in data.replace("\f", "\n").replace("\v", "\t").split("\n")]
    cells = [[(c, _text_width(c)) for c in ln] for ln in lines]
    out: list[str] = []
    widths: list[int] = []
    nlines = len(cells)

    def write_lines(l0: int, l1: int) -> None:
        for i in range(l0, l1):
            line = cells[i]
            for j, (text, w) in enumerate(line):
                out.append(text)
                if j < len(widths):
                    out.append(" " * (widths[j] - w))
            if i + 1 < nlines:
                out.append("\n")

    def fmt(l0: int, l1: int) -> None:
        column = len(widths)
        this = l0
        while this < l1:
            if column >= len(cells[this]) - 1:
                this += 1
                continue
            write_lines(l0, this)
            l0 = this
            width = minwidth
            while this < l1:
                line = cells[this]
                if column >= len(line) - 1:
                    break
                w = line[column][1] + padding
                if w > width:
                    width = w
                this += 1
            widths.append(width)
            fmt(l0, this)
            widths.pop()
            l0 = this
        write_lines(l0, l1)

    fmt(0, nlines)
    return "".join(out)


def format_table(
    template: str,
    items: Sequence[object],
    headers: Mapping[str, str] | None = None,
) -> str:
    """Render ``table`` output as docker/cli does: header row + one row per item, aligned."""
    is_table, body = parse_table(template)
    tmpl = compile_template(body)
    rows = "".join(tmpl.execute(item) + "\n" for item in items)
    if not is_table:
        return rows
    header = render_header(body, headers)
    return tabwrite(header + "\n" + rows)
