"""A build stage's state and the small helpers every step module shares."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from dockyard.engine.build.syntax import Instruction

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ["/bin/sh", "-c"]


def go_q(items: list[str]) -> str:
    """Go's %q of a []string, as dockerd writes CMD/ENTRYPOINT in history."""
    return "[" + " ".join(json.dumps(i, ensure_ascii=False) for i in items) + "]"


async def finish(coro: Any) -> Any:
    """Await work that must not be abandoned half done (a thread writing into an
    overlay, an image being written): a cancellation waits for it, then goes on."""
    task = asyncio.ensure_future(coro)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await task
        raise


def short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


@dataclass
class Stage:
    index: int
    name: str
    from_inst: Instruction
    instructions: list[Instruction]
    image: str = ""  # the image of its last step ("" = scratch, no step yet)
    config: dict[str, Any] = field(default_factory=dict)
    args: dict[str, str | None] = field(default_factory=dict)
    cmd_set: bool = False
    author: str = ""
