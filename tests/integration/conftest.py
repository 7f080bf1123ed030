"""Integration tests: real containers through the dockyard CLI.

They share the session's `daemon` (tests/conftest.py); `dockyard` here is the
CLI of this checkout, run as a user would run it, pointed at that daemon.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any, Protocol

import pytest


class CLI(Protocol):
    def __call__(
        self, *args: str, input: bytes | str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]: ...


@pytest.fixture
def dockyard(daemon) -> CLI:
    return daemon.dockyard


@pytest.fixture
def inspect(daemon) -> Any:
    """inspect('name') -> the container's (or image's) inspect JSON object."""

    def get(name: str) -> dict[str, Any]:
        proc = daemon.dockyard("inspect", name)
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        assert isinstance(data, list) and len(data) == 1, proc.stdout
        return data[0]

    return get
