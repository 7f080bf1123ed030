"""Dockerfile instructions applied to an image's container config.

This is what `docker import -c`, `docker commit -c` and
`POST /images/create?changes=` do (dockerd: dockerfile.BuildFromConfig):
only instructions that change metadata are allowed, with the Dockerfile's
quoting and $VARIABLE substitution rules.
"""

from __future__ import annotations

import copy
import json
import posixpath
import re

from dockyard.errors import InvalidParameter

# dockerd's validCommitCommands.
_VALID_COMMANDS = {
    "cmd",
    "entrypoint",
    "env",
    "expose",
    "healthcheck",
    "label",
    "onbuild",
    "stopsignal",
    "user",
    "volume",
    "workdir",
}

_DURATION_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}


def apply_changes(config: dict, changes: list[str] | tuple[str, ...]) -> dict:
    """Return a copy of `config` (Docker key names) with `changes` applied in order."""
    state = _ChangeState(copy.deepcopy(config) if config else {})
    for line in _logical_lines(changes):
        m = re.match(r"(\S+)\s*(.*)", line.strip(), re.S)
        if m is None:
            continue
        keyword, rest = m.group(1), m.group(2)
        command = keyword.lower()
        if command not in _VALID_COMMANDS:
            raise InvalidParameter(f"{command} is not a valid change command")
        getattr(state, "do_" + command)(rest.strip(), line.strip())
    return state.config


def _logical_lines(changes: list[str] | tuple[str, ...]) -> list[str]:
    # dockerd joins the changes with "\n" and parses them as a Dockerfile:
    # comments and blank lines are skipped, a trailing "\" continues a line.
    lines: list[str] = []
    pending = ""
    for raw in "\n".join(changes).split("\n"):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1]
            continue
        lines.append(pending + stripped)
        pending = ""
    if pending.strip():
        lines.append(pending)
    return lines


class _ChangeState:
    def __init__(self, config: dict) -> None:
        self.config = config
        self.cmd_set = False

    # -- variable substitution ---------------------------------------------
    def _env_map(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for item in self.config.get("Env") or []:
            key, _, value = item.partition("=")
            env[key] = value
        return env

    def _words(self, text: str) -> list[str]:
        return _shell_words(text, self._env_map())

    def _word(self, text: str) -> str:
        """The whole argument as one word (quotes removed, variables expanded)."""
        return "".join(_shell_words_keep_spaces(text, self._env_map()))

    # -- instructions ---------------------------------------------------------
    def do_cmd(self, rest: str, original: str) -> None:
        self.config["Cmd"] = _command_form(rest)
        self.cmd_set = True

    def do_entrypoint(self, rest: str, original: str) -> None:
        parsed = _command_form(rest)
        self.config["Entrypoint"] = parsed if parsed else None
        # As in a Dockerfile: a new ENTRYPOINT drops an inherited CMD unless a
        # CMD was given in these same changes.
        if not self.cmd_set:
            self.config["Cmd"] = None

    def do_env(self, rest: str, original: str) -> None:
        self.config["Env"] = with_env(self.config.get("Env"), self._name_values(rest, "ENV"))

    def do_label(self, rest: str, original: str) -> None:
        labels = dict(self.config.get("Labels") or {})
        for key, value in self._name_values(rest, "LABEL"):
            labels[key] = value
        self.config["Labels"] = labels

    def do_expose(self, rest: str, original: str) -> None:
        words = self._words(rest)
        if not words:
            raise InvalidParameter("EXPOSE requires at least one argument")
        ports = dict(self.config.get("ExposedPorts") or {})
        for word in words:
            for port in _expand_port(word):
                ports[port] = {}
        self.config["ExposedPorts"] = ports

    def do_user(self, rest: str, original: str) -> None:
        if not rest:
            raise InvalidParameter("USER requires exactly one argument")
        self.config["User"] = self._word(rest)

    def do_volume(self, rest: str, original: str) -> None:
        paths = _json_array(rest)
        if paths is None:
            paths = self._words(rest)
        if not paths:
            raise InvalidParameter("VOLUME requires at least one argument")
        volumes = dict(self.config.get("Volumes") or {})
        for path in paths:
            path = path.strip()
            if not path:
                raise InvalidParameter("VOLUME specified can not be an empty string")
            volumes[path] = {}
        self.config["Volumes"] = volumes

    def do_workdir(self, rest: str, original: str) -> None:
        if not rest:
            raise InvalidParameter("WORKDIR requires exactly one argument")
        workdir = self._word(rest)
        if not workdir.startswith("/"):
            workdir = posixpath.join(self.config.get("WorkingDir") or "/", workdir)
        self.config["WorkingDir"] = posixpath.normpath("/" + workdir.lstrip("/"))

    def do_stopsignal(self, rest: str, original: str) -> None:
        signal = self._word(rest)
        if not signal:
            raise InvalidParameter("STOPSIGNAL requires exactly one argument")
        self.config["StopSignal"] = signal

    def do_onbuild(self, rest: str, original: str) -> None:
        trigger = rest.split(None, 1)[0].upper() if rest else ""
        if not trigger:
            raise InvalidParameter("ONBUILD requires at least one argument")
        if trigger == "ONBUILD":
            raise InvalidParameter("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("MAINTAINER", "FROM"):
            raise InvalidParameter(f"{trigger} isn't allowed as an ONBUILD trigger")
        on_build = list(self.config.get("OnBuild") or [])
        on_build.append(re.sub(r"(?i)^\s*ONBUILD\s*", "", original))
        self.config["OnBuild"] = on_build

    def do_healthcheck(self, rest: str, original: str) -> None:
        words = rest.split(None, 1)
        if not words:
            raise InvalidParameter("HEALTHCHECK requires an argument")
        if words[0].upper() == "NONE":
            if len(words) > 1:
                raise InvalidParameter("HEALTHCHECK NONE takes no arguments")
            self.config["Healthcheck"] = {"Test": ["NONE"]}
            return
        health: dict = {}
        options = {
            "interval": "Interval",
            "timeout": "Timeout",
            "start-period": "StartPeriod",
            "start-interval": "StartInterval",
        }
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            rest = rest.strip()
            name, eq, value = flag[2:].partition("=")
            if not eq:
                raise InvalidParameter(f"Unknown flag: {name}")
            if name in options:
                health[options[name]] = _parse_duration(value, name)
            elif name == "retries":
                try:
                    retries = int(value)
                except ValueError:
                    raise InvalidParameter(f"invalid argument {value!r} for --retries") from None
                if retries < 0:
                    raise InvalidParameter("--retries cannot be negative")
                health["Retries"] = retries
            else:
                raise InvalidParameter(f"Unknown flag: {name}")
        kind, _, command = rest.partition(" ")
        if kind.upper() != "CMD":
            raise InvalidParameter(f'Unknown type "{kind.upper()}" in HEALTHCHECK (try CMD)')
        command = command.strip()
        exec_form = _json_array(command)
        test = ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", command]
        self.config["Healthcheck"] = {"Test": test, **health}

    # -- helpers ---------------------------------------------------------------
    def _name_values(self, rest: str, instruction: str) -> list[tuple[str, str]]:
        """ENV/LABEL arguments: `K=V K2="v 2"` pairs, or the legacy `K some value`."""
        if not rest:
            raise InvalidParameter(f"{instruction} requires at least one argument")
        env = self._env_map()
        first = re.match(r"[^\s=]+", rest)
        if first and (len(first.group(0)) == len(rest) or rest[len(first.group(0))].isspace()):
            # Legacy form: NAME then the rest of the line as the value.
            name = first.group(0)
            value = rest[len(name) :].strip()
            if not value and instruction == "ENV":
                raise InvalidParameter("ENV must have two arguments")
            if not value:
                raise InvalidParameter(f"{instruction} names can not be blank")
            return [(name, "".join(_shell_words_keep_spaces(value, env)))]
        # The whole line is expanded with the environment from before it:
        # `ENV a=1 b=$a` does not see the new a (Docker's documented rule).
        pairs: list[tuple[str, str]] = []
        for word in _shell_words(rest, env):
            key, eq, value = word.partition("=")
            if not eq:
                raise InvalidParameter(
                    f'Syntax error - can\'t find = in "{word}". Must be of the form: name=value'
                )
            if not key:
                raise InvalidParameter(f"{instruction} names can not be blank")
            pairs.append((key, value))
        return pairs


def _json_array(text: str) -> list[str] | None:
    """The exec form `["a", "b"]`, or None when `text` is not a JSON string array."""
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _command_form(rest: str) -> list[str]:
    exec_form = _json_array(rest)
    if exec_form is not None:
        return exec_form
    if not rest:
        return []
    return ["/bin/sh", "-c", rest]


def _expand_port(word: str) -> list[str]:
    port, _, proto = word.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidParameter(f"invalid proto: {proto}")
    start_s, dash, end_s = port.partition("-")
    try:
        start = int(start_s)
        end = int(end_s) if dash else start
    except ValueError:
        raise InvalidParameter(f"invalid containerPort: {port}") from None
    if not (0 < start <= 65535 and 0 < end <= 65535) or end < start:
        raise InvalidParameter(f"invalid range specified for container port: {port}")
    return [f"{p}/{proto}" for p in range(start, end + 1)]


def _parse_duration(value: str, flag: str) -> int:
    """Go's time.ParseDuration, in nanoseconds (Docker stores durations that way)."""
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", value)
    if not value or "".join(n + u for n, u in parts) != value:
        raise InvalidParameter(f'time: invalid duration "{value}"')
    for number, unit in parts:
        total += float(number) * _DURATION_UNITS_NS[unit]
    if flag != "start-interval" and flag != "start-period" and 0 < total < 1_000_000:
        raise InvalidParameter(f"Interval {flag} cannot be less than 1ms")
    return int(total)


# -- shell-word lexing with variable substitution (Dockerfile rules) -----------


def _shell_words(text: str, env: dict[str, str], expand: bool = True) -> list[str]:
    """Split on unquoted whitespace; remove quotes; expand $VAR outside single quotes."""
    words: list[str] = []
    current: list[str] = []
    in_word = False
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
            i += 1
            continue
        in_word = True
        i = _lex_one(text, i, env, current, expand)
    if in_word:
        words.append("".join(current))
    return words


def _shell_words_keep_spaces(text: str, env: dict[str, str]) -> list[str]:
    """Like _shell_words but unquoted whitespace is kept (one value, e.g. `ENV K some value`)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        i = _lex_one(text, i, env, out, True)
    return out


def _lex_one(text: str, i: int, env: dict[str, str], out: list[str], expand: bool) -> int:
    c = text[i]
    if c == "\\" and i + 1 < len(text):
        out.append(text[i + 1])
        return i + 2
    if c == "'":
        end = text.find("'", i + 1)
        if end == -1:
            raise InvalidParameter(
                "unexpected end of statement while looking for matching single-quote"
            )
        out.append(text[i + 1 : end])
        return end + 1
    if c == '"':
        i += 1
        while i < len(text) and text[i] != '"':
            if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in '"\\$':
                out.append(text[i + 1])
                i += 2
            elif text[i] == "$" and expand:
                i = _expand_var(text, i, env, out)
            else:
                out.append(text[i])
                i += 1
        if i >= len(text):
            raise InvalidParameter(
                "unexpected end of statement while looking for matching double-quote"
            )
        return i + 1
    if c == "$" and expand:
        return _expand_var(text, i, env, out)
    out.append(c)
    return i + 1


def _expand_var(text: str, i: int, env: dict[str, str], out: list[str]) -> int:
    """Expand $NAME, ${NAME}, ${NAME:-word}, ${NAME:+word} starting at text[i] == "$"."""
    if i + 1 < len(text) and text[i + 1] == "{":
        end = text.find("}", i + 2)
        if end == -1:
            raise InvalidParameter(f"missing '}}' in '{text}'")
        body = text[i + 2 : end]
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?::([-+?])(.*))?", body, re.S)
        if m is None:
            raise InvalidParameter(f"bad substitution in '{text}'")
        name, op, word = m.group(1), m.group(2), m.group(3) or ""
        value = env.get(name, "")
        if op == "-":
            value = value or word
        elif op == "+":
            value = word if value else ""
        elif op == "?" and not value:
            raise InvalidParameter(f"{name}: {word or 'is not allowed to be unset'}")
        out.append(value)
        return end + 1
    m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text[i + 1 :])
    if m is None:
        out.append("$")
        return i + 1
    out.append(env.get(m.group(0), ""))
    return i + 1 + len(m.group(0))


def with_env(env: list[str] | None, pairs: list[tuple[str, str]]) -> list[str]:
    """An image config's Env after ENV pairs, as the builder and `commit -c` set it: a
    pair replaces the entry of its name in place, or is appended."""
    out = list(env or [])
    for key, value in pairs:
        entry = f"{key}={value}"
        for i, existing in enumerate(out):
            if existing.partition("=")[0] == key:
                out[i] = entry
                break
        else:
            out.append(entry)
    return out
