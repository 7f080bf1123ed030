"""The steps that write files through an overlay of the image: COPY and ADD
(sources resolved in the context, another stage, an image, a URL or a heredoc,
checksummed for the cache) and WORKDIR (its directory)."""

from __future__ import annotations

import asyncio
import logging
import os
import posixpath
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dockyard.engine.build import copy_step, heredocs, sources, words
from dockyard.engine.build.context_index import IndexedRoot
from dockyard.engine.build.profile import BuildProfile
from dockyard.engine.build.sources import has_wildcard
from dockyard.engine.build.stage import Stage, finish, short
from dockyard.engine.build.syntax import Instruction
from dockyard.errors import InvalidParameter
from dockyard.image.users import resolve_user
from dockyard.kernel.interface import Kernel

log = logging.getLogger("dockyard.build")

if TYPE_CHECKING:
    from dockyard.engine.build.context import BuildContext
    from dockyard.engine.images import ImageService


class CopySteps:
    """Mixed into the Builder, which provides the attributes and _commit used here."""

    kernel: Kernel
    images: ImageService
    ctx: BuildContext
    work_dir: str
    stages: list[Stage]
    _scratch: int
    profile: BuildProfile
    escape: str

    async def _do_copy(self, stage: Stage, inst: Instruction) -> None:
        await self._copy(stage, inst, "COPY")

    async def _do_add(self, stage: Stage, inst: Instruction) -> None:
        await self._copy(stage, inst, "ADD")

    async def _do_workdir(self, stage: Stage, inst: Instruction) -> None:
        """As dockerd: the directory is made now, in the step's own layer (an empty
        layer when the image has it already)."""
        if len(inst.args) != 1:
            raise InvalidParameter("WORKDIR requires exactly one argument")
        path = self._word(stage, inst.args[0])
        if not path.startswith("/"):
            path = posixpath.join(stage.config.get("WorkingDir") or "/", path)
        path = posixpath.normpath(path)
        stage.config["WorkingDir"] = path
        cache_cmd = [*self._shell(stage), f"#(nop) WORKDIR {path}"]

        async def make() -> tuple[str, Callable[[], Any]]:
            return await self._write_in_overlay(
                stage,
                self._scratch_dir(),
                lambda root_fd: copy_step.make_dirs(self.kernel, root_fd, path, None),
            )

        await self._commit(stage, cache_cmd, make)

    async def _write_in_overlay(
        self,
        stage: Stage,
        target: str,
        work: Callable[[int], Any],
        phase: str | None = None,
    ) -> tuple[str, Callable[[], Any]]:
        """The stage's image mounted at `target` over a fresh upper dir, `work(root_fd)`
        run in a thread: the upper dir (the step's changes) and the unmount, which the
        commit runs once it has read them."""
        lowers = self.images.blobs.lower_dirs(stage.image) if stage.image else []
        mount = copy_step.mounted_image(self.kernel, lowers, target, remove=False)
        root_fd, upper = mount.__enter__()
        try:
            if phase is None:
                await finish(asyncio.to_thread(work, root_fd))
            else:
                with self.profile.phase(phase):
                    await finish(asyncio.to_thread(work, root_fd))
        except BaseException:
            mount.__exit__(None, None, None)
            raise

        async def cleanup() -> None:
            await asyncio.to_thread(mount.__exit__, None, None, None)

        return upper, cleanup

    def _scratch_dir(self) -> str:
        self._scratch += 1
        return os.path.join(self.work_dir, f"step-{self._scratch}")

    async def _copy(self, stage: Stage, inst: Instruction, what: str) -> None:
        args = list(inst.args)
        if len(args) < 2:
            raise InvalidParameter(f"{what} requires at least two arguments")
        # Each heredoc source (by its argument, `<<EOF`) -> (file name, content).
        heredoc_files: dict[str, tuple[str, str]] = {}
        by_name = {h.name: h for h in inst.heredocs}
        dest_arg = self._word(stage, args[-1])
        srcs = []
        for a in args[:-1]:
            mark = heredocs.marker(a) if by_name else None
            if mark is not None and mark.name in by_name:
                content = heredocs.body(by_name[mark.name], mark)
                if mark.expand:
                    content = words.raw_word(content, self._env(stage), self.escape)
                heredoc_files[a] = (mark.name, content)
                srcs.append(a)
            else:
                srcs.extend(self._words(stage, a) if not inst.json else [a])
        workdir = stage.config.get("WorkingDir") or "/"
        dest = dest_arg if dest_arg.startswith("/") else posixpath.join(workdir, dest_arg)
        dest_is_dir = dest_arg.endswith("/") or dest_arg in (".", "..") or dest_arg.endswith("/.")
        dest = posixpath.normpath(dest)
        if inst.flags.get("chown"):
            own = await asyncio.to_thread(self._ownership, stage, inst)  # reads the image
        else:
            own = self._ownership(stage, inst)
        from_ref = inst.flags.get("from")
        if from_ref is not None:
            from_ref = self._word(stage, from_ref)
        if what == "ADD" and from_ref is not None:
            raise InvalidParameter("ADD does not take --from (use COPY --from)")
        scratch = self._scratch_dir()
        os.makedirs(scratch, mode=0o700)
        source_mount = None
        try:
            if from_ref is not None:
                image = self._from_image(stage, from_ref)
                source_mount = copy_step.mounted_image(
                    self.kernel,
                    self.images.blobs.lower_dirs(image) if image else [],
                    scratch + "/from",
                )
                src_root_path = os.path.join(scratch, "from", "root")
                source_mount.__enter__()
                root = sources.SourceRoot(self.kernel, src_root_path)
                kind_prefix = f"from {short(image)} " if image else ""
            else:
                if what == "ADD" and any(s.startswith(("http://", "https://")) for s in srcs):
                    # the plan downloads: make it once, from the files
                    await finish(asyncio.to_thread(self.ctx.materialize, self.kernel))
                root = self.ctx.source_root(self.kernel)
                kind_prefix = ""
            plan_args = (srcs, heredoc_files, dest, dest_is_dir, own, what, scratch)
            try:
                with self.profile.phase(f"{what} sources+checksum"):
                    if (
                        isinstance(root, IndexedRoot)
                        and len(root.index.entries) <= _INLINE_ENTRIES
                        and not heredoc_files
                        and what == "COPY"
                    ):
                        # a small context's index: memory only, no file read, ~1 ms for
                        # hundreds of files (as much as the thread hop would cost)
                        plan = self._copy_plan(root, *plan_args)
                    else:
                        plan = await asyncio.to_thread(self._copy_plan, root, *plan_args)
            finally:
                root.close()
            # From the context's index: the files are written out only if the step runs.
            from_index = root.virtual
            shown_dest = dest + ("/" if dest_is_dir and dest != "/" else "")
            # One word, as dockerd's withCmdCommentString (metadata steps use two).
            cache_cmd = [
                *self._shell(stage),
                f"#(nop) {what} {kind_prefix}{plan.kind}:{plan.checksum} in {shown_dest} ",
            ]

            async def make() -> tuple[str, Callable[[], Any]]:
                nonlocal plan
                if from_index:
                    with self.profile.phase("context unpacked (a COPY/ADD missed the cache)"):
                        await finish(asyncio.to_thread(self.ctx.materialize, self.kernel))
                    disk = self.ctx.source_root(self.kernel)
                    try:
                        on_disk = await asyncio.to_thread(self._copy_plan, disk, *plan_args)
                    finally:
                        disk.close()
                    if on_disk.checksum != plan.checksum:
                        log.error(
                            "%s: the context's index and its files disagree on what it copies",
                            what,
                        )
                    plan = on_disk
                applied = plan
                return await self._write_in_overlay(
                    stage,
                    scratch + "/to",
                    lambda root_fd: applied.apply(self.kernel, root_fd, own),
                    phase=f"{what} files into the overlay",
                )

            await self._commit(stage, cache_cmd, make)
        finally:
            if source_mount is not None:
                source_mount.__exit__(None, None, None)

    def _from_image(self, stage: Stage, ref: str) -> str:
        earlier = self.stages[: stage.index]
        if ref.isdigit() and int(ref) < stage.index:
            return earlier[int(ref)].image
        for s in earlier:
            if s.name == ref.lower():
                return s.image
        return self.images.resolve(ref)

    def _ownership(self, stage: Stage, inst: Instruction) -> sources.Ownership:
        own = sources.Ownership()
        chmod = inst.flags.get("chmod")
        if chmod is not None:
            try:
                own.mode = int(chmod, 8)
            except ValueError:
                raise InvalidParameter(
                    f"invalid chmod parameter: {chmod!r} (octal digits only)"
                ) from None
            if not 0 <= own.mode <= 0o7777:
                raise InvalidParameter(f"invalid chmod parameter: {chmod!r}")
        chown = inst.flags.get("chown")
        if chown:
            chown = self._word(stage, chown)
            user, _, group = chown.partition(":")
            lowers = self.images.blobs.lower_dirs(stage.image) if stage.image else []

            def read(path: str) -> bytes | None:
                return self.images.blobs.read_file(lowers, path) if lowers else None

            uid, gid, _ = resolve_user(f"{user}:{group or user}", read)
            own.uid, own.gid = uid, gid
        return own

    def _copy_plan(
        self,
        root: sources.SourceRoot | IndexedRoot,
        srcs: list[str],
        heredoc_files: dict[str, tuple[str, str]],
        dest: str,
        dest_is_dir: bool,
        own: sources.Ownership,
        what: str,
        scratch: str,
    ) -> CopyPlan:
        resolved: list[sources.Source] = []
        in_root: set[int] = set()  # the sources found in `root` (not heredocs, downloads)
        urls: list[str] = []
        for src in srcs:
            if src in heredoc_files:
                name, content = heredoc_files[src]
                path = os.path.join(scratch, f"heredoc-{len(resolved)}")
                with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
                    f.write(content)
                os.chmod(path, 0o644)
                resolved.append(sources.Source(src, path, False, name))
            elif what == "ADD" and src.startswith(("http://", "https://")):
                urls.append(src)
                path, name = _download(src, scratch, len(resolved))
                resolved.append(sources.Source(src, path, False, name))
            elif src.startswith(("http://", "https://", "git@")) or src.endswith(".git"):
                raise InvalidParameter(f"{what} failed: source can't be a URL for {what}")
            else:
                found = root.resolve(src, what)
                in_root.update(id(f) for f in found)
                resolved.extend(found)

        def stat_of(src: sources.Source) -> os.stat_result:
            return root.stat(src.path) if id(src) in in_root else os.stat(src.path)

        def head_of(src: sources.Source) -> bytes:
            if id(src) in in_root:
                return root.head(src.path, 512)
            with open(src.path, "rb") as f:
                return f.read(512)

        multiple = len(resolved) > 1 or any(has_wildcard(s) for s in srcs)
        if len(resolved) > 1 and not dest_is_dir:
            raise InvalidParameter(
                f"When using {what} with more than one source file, the destination must be "
                "a directory and end with a /"
            )
        plan = CopyPlan(dest)
        for src in resolved:
            archive = (
                what == "ADD"
                and src.arg not in urls
                and not src.is_dir
                and _is_archive(head_of(src))
            )
            if archive:
                plan.archives.append(src.path)
                plan.entries.append(sources.Entry("", src.path, stat_of(src)))
                continue
            if src.is_dir:
                plan.copies.append((dest, list(root.entries(src, ""))))
                continue
            if dest_is_dir or multiple:
                target_dir, name = dest, posixpath.basename(src.rel)
            else:
                target_dir, name = posixpath.dirname(dest), posixpath.basename(dest)
            entry = sources.Entry(name, src.path, stat_of(src))
            if src.arg in urls:
                entry.st = _with_mode(entry.st, 0o600)
            plan.copies.append((target_dir, [entry]))
            plan.file_into.append((target_dir, name))
        all_entries = [e for _d, es in plan.copies for e in es]
        plan.checksum = sources.checksum(all_entries + plan.entries, own, root.digests)
        if len(resolved) == 1 and not resolved[0].is_dir:
            plan.kind = "file"
        elif len(resolved) == 1:
            plan.kind = "dir"
        else:
            plan.kind = "multi"
        return plan


_INLINE_ENTRIES = 5000  # a bigger context's COPY plan is made in a thread


@dataclass
class CopyPlan:
    dest: str
    copies: list[tuple[str, list[sources.Entry]]] = field(default_factory=list)
    archives: list[str] = field(default_factory=list)
    entries: list[sources.Entry] = field(default_factory=list)  # of archives, for the checksum
    file_into: list[tuple[str, str]] = field(default_factory=list)
    checksum: str = ""
    kind: str = "file"

    def apply(self, kernel: Kernel, root_fd: int, own: sources.Ownership) -> None:
        owner = (own.uid or 0, own.gid or 0) if own.uid is not None else None
        for directory, entries in self.copies:
            # A file copied onto an existing directory goes into it (dockerd's rule).
            if len(entries) == 1 and entries[0].name and not entries[0].name.count("/"):
                whole = posixpath.join(directory, entries[0].name)
                if (
                    (directory, entries[0].name) in self.file_into
                    and copy_step.is_dir_in_root(kernel, root_fd, whole)
                    and not _is_dir_entry(entries[0])
                ):
                    directory = whole
            copy_step.make_dirs(kernel, root_fd, directory, owner)
            copy_step.extract_into(
                kernel, root_fd, directory, lambda out, es=entries: sources.write_tar(es, own, out)
            )
        for archive in self.archives:
            copy_step.make_dirs(kernel, root_fd, self.dest, owner)
            copy_step.extract_archive(kernel, root_fd, self.dest, archive)


def _is_dir_entry(entry: sources.Entry) -> bool:
    return stat.S_ISDIR(entry.st.st_mode)


def _with_mode(st: os.stat_result, mode: int) -> os.stat_result:
    values = list(st)
    values[0] = (st.st_mode & ~0o7777) | mode
    return os.stat_result(values)


def _is_archive(head: bytes) -> bool:
    """Whether a file starting so is an archive ADD unpacks."""
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")):
        return True
    return len(head) == 512 and head[257:262] == b"ustar"


_MAX_DOWNLOAD = 8 << 30


def _download(url: str, scratch: str, n: int) -> tuple[str, str]:
    """ADD URL: the body in a file; the name is the URL's last path element."""
    import urllib.request
    from email.utils import parsedate_to_datetime

    path = os.path.join(scratch, f"download-{n}")
    name = posixpath.basename(urllib.parse.urlparse(url).path) or "index.html"
    try:
        with urllib.request.urlopen(url, timeout=30) as resp, open(path, "wb") as out:  # noqa: S310
            size = 0
            while chunk := resp.read(1 << 20):
                size += len(chunk)
                if size > _MAX_DOWNLOAD:
                    raise InvalidParameter(f"ADD failed: {url} is larger than 8 GiB")
                out.write(chunk)
            modified = resp.headers.get("Last-Modified")
    except OSError as e:
        raise InvalidParameter(f"ADD failed: cannot download {url}: {e}") from None
    os.chmod(path, 0o600)
    if modified:
        try:
            ts = parsedate_to_datetime(modified).timestamp()
            os.utime(path, (ts, ts))
        except (TypeError, ValueError):
            pass
    return path, name
