"""The steps that change only the image config (ENV, LABEL, CMD, ENTRYPOINT, SHELL,
EXPOSE, VOLUME, USER, WORKDIR, STOPSIGNAL, ONBUILD, HEALTHCHECK, MAINTAINER):
each commits an image with an empty layer and dockerd's `#(nop)` history text."""

from __future__ import annotations

import json
from typing import Any

from dockyard.engine.build.stage import Stage, go_q
from dockyard.engine.build.syntax import Instruction
from dockyard.engine.containers import parse_signal
from dockyard.errors import InvalidParameter
from dockyard.image.changes import _expand_port, _parse_duration, with_env


class MetadataSteps:
    """Mixed into the Builder, which provides _word, _words, _shell and _commit_meta."""

    async def _do_env(self, stage: Stage, inst: Instruction) -> None:
        pairs = self._pairs(stage, inst)
        stage.config["Env"] = with_env(stage.config.get("Env"), pairs)
        await self._commit_meta(stage, "ENV " + " ".join(f"{k}={v}" for k, v in pairs))

    def _pairs(self, stage: Stage, inst: Instruction) -> list[tuple[str, str]]:
        if not inst.args or len(inst.args) % 2:
            raise InvalidParameter(f"{inst.cmd} requires at least one argument")
        out = []
        literal = inst.flags.get("literal")
        for i in range(0, len(inst.args), 2):
            key, value = inst.args[i], inst.args[i + 1]
            if not literal:
                key, value = self._word(stage, key), self._word(stage, value)
            if not key:
                raise InvalidParameter(f"{inst.cmd} names can not be blank")
            out.append((key, value))
        return out

    async def _do_label(self, stage: Stage, inst: Instruction) -> None:
        pairs = self._pairs(stage, inst)
        labels = dict(stage.config.get("Labels") or {})
        labels.update(pairs)
        stage.config["Labels"] = labels
        # dockerd's history: KEY=VALUE unquoted (`LABEL a="b c"` reads `LABEL a=b c`)
        await self._commit_meta(stage, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs))

    async def _do_maintainer(self, stage: Stage, inst: Instruction) -> None:
        stage.author = self._word(stage, " ".join(inst.args))
        await self._commit_meta(stage, f"MAINTAINER {stage.author}")

    def _command(self, stage: Stage, inst: Instruction) -> list[str]:
        if inst.json:
            return list(inst.args)
        text = inst.args[0] if inst.args else ""
        return [*self._shell(stage), text] if text else []

    async def _do_cmd(self, stage: Stage, inst: Instruction) -> None:
        cmd = self._command(stage, inst)
        stage.config["Cmd"] = cmd
        stage.cmd_set = True
        await self._commit_meta(stage, f"CMD {go_q(cmd)}")

    async def _do_entrypoint(self, stage: Stage, inst: Instruction) -> None:
        entrypoint = self._command(stage, inst)
        stage.config["Entrypoint"] = entrypoint or None
        if not stage.cmd_set:
            stage.config["Cmd"] = None  # an inherited CMD does not outlive a new ENTRYPOINT
        await self._commit_meta(stage, f"ENTRYPOINT {go_q(entrypoint)}")

    async def _do_shell(self, stage: Stage, inst: Instruction) -> None:
        if not inst.json or not inst.args:
            raise InvalidParameter("SHELL requires the arguments to be in JSON form")
        stage.config["Shell"] = list(inst.args)
        await self._commit_meta(stage, "SHELL [" + " ".join(inst.args) + "]")

    async def _do_expose(self, stage: Stage, inst: Instruction) -> None:
        ports = dict(stage.config.get("ExposedPorts") or {})
        words = [w for arg in inst.args for w in self._words(stage, arg)]
        for word in words:
            for port in _expand_port(word):
                ports[port] = {}
        if not words:
            raise InvalidParameter("EXPOSE requires at least one argument")
        stage.config["ExposedPorts"] = ports
        # dockerd records the ports as written (`EXPOSE 80`, not 80/tcp)
        await self._commit_meta(stage, "EXPOSE " + " ".join(words))

    async def _do_volume(self, stage: Stage, inst: Instruction) -> None:
        paths = (
            list(inst.args) if inst.json else [w for a in inst.args for w in self._words(stage, a)]
        )
        if not paths:
            raise InvalidParameter("VOLUME requires at least one argument")
        volumes = dict(stage.config.get("Volumes") or {})
        for path in paths:
            if not path.strip():
                raise InvalidParameter("VOLUME specified can not be an empty string")
            volumes[path.strip()] = {}
        stage.config["Volumes"] = volumes
        await self._commit_meta(stage, "VOLUME [" + " ".join(paths) + "]")

    async def _do_user(self, stage: Stage, inst: Instruction) -> None:
        if len(inst.args) != 1:
            raise InvalidParameter("USER requires exactly one argument")
        stage.config["User"] = self._word(stage, inst.args[0])
        await self._commit_meta(stage, f"USER {stage.config['User']}")

    async def _do_stopsignal(self, stage: Stage, inst: Instruction) -> None:
        if len(inst.args) != 1:
            raise InvalidParameter("STOPSIGNAL requires exactly one argument")
        signal = self._word(stage, inst.args[0])
        parse_signal(signal)  # an unknown signal fails the build here
        stage.config["StopSignal"] = signal
        await self._commit_meta(stage, f"STOPSIGNAL {signal}")

    async def _do_onbuild(self, stage: Stage, inst: Instruction) -> None:
        assert inst.sub is not None
        trigger = inst.sub.original
        stage.config["OnBuild"] = [*(stage.config.get("OnBuild") or []), trigger]
        await self._commit_meta(stage, f"ONBUILD {trigger}")

    async def _do_healthcheck(self, stage: Stage, inst: Instruction) -> None:
        args = list(inst.args)
        if not args:
            raise InvalidParameter("HEALTHCHECK requires an argument")
        kind = args[0].upper()
        if kind == "NONE":
            if len(args) > 1 or inst.flags:
                raise InvalidParameter("HEALTHCHECK NONE takes no arguments")
            health: dict[str, Any] = {"Test": ["NONE"]}
        else:
            if kind != "CMD":
                raise InvalidParameter(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
            test = ["CMD", *args[1:]] if inst.json else ["CMD-SHELL", " ".join(args[1:])]
            health = {"Test": test}
            names = {
                "interval": "Interval",
                "timeout": "Timeout",
                "start-period": "StartPeriod",
                "start-interval": "StartInterval",
            }
            for flag, value in inst.flags.items():
                if flag in names:
                    health[names[flag]] = _parse_duration(value, flag)
                elif flag == "retries":
                    try:
                        retries = int(value)
                    except ValueError:
                        raise InvalidParameter(
                            f"invalid argument {value!r} for --retries"
                        ) from None
                    if retries < 0:
                        raise InvalidParameter("--retries cannot be negative")
                    health["Retries"] = retries
        stage.config["Healthcheck"] = health
        await self._commit_meta(stage, f"HEALTHCHECK {_go_health(health)}")


def _go_duration(ns: int) -> str:
    """Go's time.Duration.String() ("5s", "1m30s", "100ms", "0s")."""
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return f"{ns / size:g}{unit}"
    hours, rest = divmod(ns, 3600 * 1_000_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000_000)
    seconds = f"{rest / 1_000_000_000:.9f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


def _go_health(health: dict[str, Any]) -> str:
    """dockerd's `HEALTHCHECK %q` of its HealthConfig, as history shows it."""
    if health["Test"] == ["NONE"]:
        return '&{["NONE"] "0s" "0s" "0s" "0s" \'\\x00\'}'
    durations = " ".join(
        json.dumps(_go_duration(int(health.get(k) or 0)))
        for k in ("Interval", "Timeout", "StartPeriod", "StartInterval")
    )
    retries = int(health.get("Retries") or 0)
    return f"&{{{go_q(health['Test'])} {durations} '\\x{retries:02x}'}}"
