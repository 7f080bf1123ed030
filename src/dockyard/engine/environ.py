"""A process's environment as dockerd builds it (container.ReplaceOrAppendEnvValues)."""

from __future__ import annotations


def replace_or_append(defaults: list[str], overrides: list[str]) -> list[str]:
    """`overrides` replace same-named `defaults` or are appended; an override without
    `=` (`-e NAME` when NAME is not set where the CLI runs) unsets NAME, and is never
    passed to the process itself."""
    env: dict[str, str] = {}
    for e in defaults:
        key, _, value = e.partition("=")
        env[key] = value
    for e in overrides:
        key, eq, value = e.partition("=")
        if eq:
            env[key] = value
        else:
            env.pop(key, None)
    return [f"{k}={v}" for k, v in env.items()]
