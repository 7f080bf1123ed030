"""Docker's human-readable renderings (go-units) and table / --format output."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from dockyard.formats import human_duration

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

DECIMAL_UNITS = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]


def _go_g(value: float, precision: int) -> str:
    """Go's %.<p>g (same as C's, except Go prints exponents with at least 2 digits)."""
    return f"{value:.{precision}g}"


def human_size(size: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision: SI units, '4.26MB', '1.2kB', '0B'."""
    i = 0
    while size >= 1000.0 and i < len(DECIMAL_UNITS) - 1:
        size /= 1000.0
        i += 1
    return f"{_go_g(size, precision)}{DECIMAL_UNITS[i]}"


def bytes_size(size: float) -> str:
    """go-units BytesSize: binary units (KiB, MiB) for `info` memory lines."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]
    i = 0
    while size >= 1024.0 and i < len(units) - 1:
        size /= 1024.0
        i += 1
    return f"{_go_g(size, 4)}{units[i]}"


def short_id(ident: str) -> str:
    """stringid.TruncateID: drop the algorithm prefix, keep 12 hex chars."""
    if ":" in ident:
        ident = ident.split(":", 1)[1]
    return ident[:12]


def ellipsis(text: str, max_len: int) -> str:
    if len(text) <= max_len:
        return text
    if max_len <= 1:
        return text[:max_len]
    return text[: max_len - 1] + "…"


def go_quote(text: str) -> str:
    """strconv.Quote: double-quoted with Go escapes."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def parse_time(value: str | int | float | None) -> float | None:
    """Engine timestamps: unix seconds (int) or RFC 3339 with nanoseconds."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    if text.startswith("0001-01-01"):
        return None
    try:
        return float(text)
    except ValueError:
        pass
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python's fromisoformat takes at most 6 fractional digits
    main, dot, frac = text.partition(".")
    if dot:
        digits = ""
        rest = ""
        for k, ch in enumerate(frac):
            if not ch.isdigit():
                rest = frac[k:]
                break
            digits += ch
        text = main + "." + (digits[:6] or "0") + rest
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def time_ago(value: str | int | float | None, now: float | None = None) -> str:
    ts = parse_time(value)
    if ts is None:
        return ""
    now = time.time() if now is None else now
    return human_duration(max(0.0, now - ts)) + " ago"


def go_time_string(ts: float) -> str:
    """time.Time.String() in local time, as `ps --format {{.CreatedAt}}` shows it."""
    dt = datetime.fromtimestamp(ts).astimezone()
    off = dt.strftime("%z")
    return dt.strftime("%Y-%m-%d %H:%M:%S ") + off + " " + (dt.tzname() or "")


def format_ports(ports: Sequence[Mapping[str, Any]] | None) -> str:
    """DisplayablePorts: '0.0.0.0:8080->80/tcp, :::8080->80/tcp, 443/tcp'."""
    if not ports:
        return ""
    items: list[tuple[tuple[Any, ...], str]] = []
    seen: set[str] = set()
    for p in ports:
        private = int(p.get("PrivatePort") or 0)
        proto = p.get("Type") or "tcp"
        public = p.get("PublicPort")
        ip = p.get("IP") or ""
        if public:
            host = f"[{ip}]" if ":" in ip and ip != "::" else ip
            text = f"{host}:{public}->{private}/{proto}"
        else:
            text = f"{private}/{proto}"
        if text in seen:
            continue
        seen.add(text)
        items.append(((ip, private, proto, public or 0), text))
    items.sort(key=lambda t: t[0])
    return ", ".join(t for _, t in items)


class Formatter:
    """Renders rows as docker does: a default table, `table TEMPLATE`, raw template, json.

    `headers` maps template field names to column titles (docker renders the
    header row by executing the template against exactly such a map).
    """

    def __init__(self, fmt: str, default_table: str, headers: Mapping[str, str]) -> None:
        self.fmt = fmt or "table"
        self.default_table = default_table
        self.headers = headers

    def render(self, rows: Sequence[Mapping[str, Any]]) -> str:
        fmt = "table " + self.default_table if self.fmt == "table" else self.fmt
        fast = self._render_simple(fmt, rows)
        if fast is not None:
            return fast
        from dockyard.cli import gotemplate
        from dockyard.cli.context import CLIError

        try:
            return gotemplate.format_table(fmt, rows, self.headers)
        except gotemplate.TemplateError as exc:
            raise CLIError(str(exc), 1) from None

    def _render_simple(self, fmt: str, rows: Sequence[Mapping[str, Any]]) -> str | None:
        """Formats made only of `{{.Field}}` cells (the defaults, -q) skip the template
        engine, whose import alone costs more than the rest of `ps`."""
        is_table = fmt.startswith("table")
        body = (fmt[len("table") :] if is_table else fmt).strip(" ")
        body = body.replace("\\t", "\t")
        fields = []
        for cell in body.split("\t"):
            name = cell[3:-2] if cell.startswith("{{.") and cell.endswith("}}") else ""
            if not name.isalnum() or name not in self.headers:
                return None
            fields.append(name)
        lines = [[str(row.get(f, "")) for f in fields] for row in rows]
        if any("\t" in c or "\n" in c for cells in lines for c in cells):
            return None  # tabwriter semantics for embedded tabs: leave it to the engine
        if not is_table:
            return "".join("\t".join(cells) + "\n" for cells in lines)
        lines.insert(0, [self.headers[f] for f in fields])
        return align_columns(lines)


def align_columns(lines: list[list[str]], minwidth: int = 10, padding: int = 3) -> str:
    """tabwriter.NewWriter(out, 10, 1, 3, ' ', 0) over tab-separated cells, as docker
    prints tables: every cell but the last of a line is padded to its column's width."""
    widths: list[int] = []
    for cells in lines:
        for i, cell in enumerate(cells[:-1]):
            width = max(minwidth, len(cell) + padding)
            if i == len(widths):
                widths.append(width)
            elif width > widths[i]:
                widths[i] = width
    out = []
    for cells in lines:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(cells[:-1])]
        out.append("".join(padded) + (cells[-1] if cells else "") + "\n")
    return "".join(out)
