"""`dockyard build`'s two halves beside the request: the context tar made from a
directory while it is sent (.dockerignore applied, the Dockerfile always in
it), and the display of the build stream with each step's duration."""

from __future__ import annotations

import os
import secrets
import stat
import tarfile
import threading
import time

from dockyard.dockerignore import Matcher, read_patterns

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO


def _ignore(root: str) -> Matcher:
    try:
        with open(os.path.join(root, ".dockerignore"), encoding="utf-8", errors="replace") as f:
            return Matcher(read_patterns(f.read()))
    except (FileNotFoundError, IsADirectoryError):
        return Matcher([])


def directory_tar(root: str, dockerfile: str) -> tuple[IO[bytes], str, Callable[[], None]]:
    """(stream of the context tar, the Dockerfile's name in it, close)."""
    root = os.path.abspath(root)
    ignore = _ignore(root)
    extra: tuple[str, str] | None = None  # (name in the tar, path) of an outside Dockerfile
    if dockerfile:
        path = dockerfile if os.path.isabs(dockerfile) else os.path.join(os.getcwd(), dockerfile)
        if not os.path.exists(path) and not os.path.isabs(dockerfile):
            path = os.path.join(root, dockerfile)
        path = os.path.abspath(path)
        if not os.path.isfile(path):
            raise OSError(f"Cannot locate specified Dockerfile: {dockerfile}")
        rel = os.path.relpath(path, root)
        if rel.startswith(".."):
            # As the docker CLI: a Dockerfile outside the context travels under a random name.
            name = f".dockerfile.{secrets.token_hex(10)}"
            extra = (name, path)
        else:
            name = rel
    else:
        name = "Dockerfile"
        if not os.path.exists(os.path.join(root, name)):
            raise OSError(f"Cannot locate specified Dockerfile: {name}")
    always = {name, ".dockerignore"}
    read_fd, write_fd = os.pipe()

    def produce() -> None:
        try:
            with (
                open(write_fd, "wb") as out,
                tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
            ):
                _add_tree(tar, root, "", ignore, always)
                if extra is not None:
                    tar.add(extra[1], arcname=extra[0], recursive=False)
        except (BrokenPipeError, OSError):
            pass  # the request failed; its error is the one shown

    thread = threading.Thread(target=produce, name="build-context", daemon=True)
    thread.start()
    stream = open(read_fd, "rb")  # noqa: SIM115 - the caller closes it

    def close() -> None:
        stream.close()
        thread.join(timeout=5)

    return stream, name, close


def _add_tree(tar: tarfile.TarFile, root: str, rel: str, ignore: Matcher, always: set[str]) -> None:
    directory = os.path.join(root, rel) if rel else root
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        path_rel = f"{rel}/{entry.name}" if rel else entry.name
        is_dir = entry.is_dir(follow_symlinks=False)
        excluded = ignore and ignore.excluded(path_rel) and path_rel not in always
        if excluded and not (is_dir and ignore.has_exceptions):
            continue
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISSOCK(st.st_mode):
            continue
        info = tar.gettarinfo(entry.path, arcname=path_rel)
        # Owners are the daemon's business (COPY makes them root's); names would only leak.
        info.uname = info.gname = ""
        if not excluded:
            if info.isreg():
                with open(entry.path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
        if is_dir:
            _add_tree(tar, root, path_rel, ignore, always)


class StepDisplay:
    """The build stream as docker prints it, each step closed with its duration;
    on a terminal, a step that runs silently shows its elapsed time, ticking."""

    def __init__(self, out: IO[str], terminal: bool, quiet: bool = False) -> None:
        self.out = out
        self.terminal = terminal
        self.quiet = quiet
        self._step_start: float | None = None
        self._step_name = ""
        self._at_line_start = True
        self._status_shown = False
        self._last_output = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if terminal and not quiet:
            self._ticker = threading.Thread(target=self._tick, name="build-ticker", daemon=True)
            self._ticker.start()

    def _clear_status(self) -> None:
        if self._status_shown:
            self.out.write("\r\x1b[K")
            self._status_shown = False

    def _tick(self) -> None:
        while not self._stop.wait(0.2):
            with self._lock:
                if self._step_start is None or not self._at_line_start:
                    continue
                if time.monotonic() - self._last_output < 1.0:
                    continue
                elapsed = time.monotonic() - self._step_start
                self.out.write(f"\r\x1b[K ... {self._step_name} {elapsed:.1f}s")
                self.out.flush()
                self._status_shown = True

    def _end_step(self) -> None:
        if self._step_start is not None:
            took = time.monotonic() - self._step_start
            if not self._at_line_start:
                self.out.write("\n")
            self.out.write(f" ---> {self._step_name} took {took:.2f}s\n")
            self._at_line_start = True
        self._step_start = None

    def write(self, text: str) -> None:
        if self.quiet:
            return
        with self._lock:
            self._clear_status()
            if text.startswith("Step "):
                self._end_step()
                self._step_start = time.monotonic()
                self._step_name = text.split(" : ", 1)[0]
            elif text.startswith("Successfully built"):
                self._end_step()
            self.out.write(text)
            self.out.flush()
            self._at_line_start = text.endswith("\n")
            self._last_output = time.monotonic()

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1)
        with self._lock:
            self._clear_status()
            if self._step_start is not None and not self.quiet:
                self._end_step()
            self.out.flush()
