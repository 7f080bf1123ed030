"""Unit-test fixtures shared by the image tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from dockyard.image import tarsafe
from dockyard.kernel.fake import RecordingKernel
from dockyard.kernel.interface import Kernel

ROOT = os.geteuid() == 0


@pytest.fixture
def unpack_kernel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Kernel]:
    """The kernel layers are unpacked with: the real one as root; without root the
    recording one, so chown, mknod and trusted xattrs are recorded instead of done
    while path resolution and every other file operation is real (DESIGN.md: unit tests without root)."""
    if ROOT:
        yield tarsafe.default_kernel()
        return
    kernel = RecordingKernel(real_files=True)
    monkeypatch.setattr(tarsafe, "_KERNEL", [kernel])
    yield kernel
