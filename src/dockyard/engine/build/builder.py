"""The classic builder: a Dockerfile's stages run step by step into images.

Each step makes an image (dockerd's intermediate images: untagged, with the
previous step's image as parent) whose config carries, in
`container_config.Cmd`, what the step was: `#(nop) ENV A=1`, the RUN command
(with the build args it saw), or `#(nop) COPY file:<checksum> in /dest`. That
is the cache, as in dockerd: a step reuses the child of its parent image
whose container_config is the one it would write; it lives as long as the
images do, so it survives a daemon restart and goes with `image prune`/`rmi`.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dockyard.engine.build import heredocs, run_step, syntax, words
from dockyard.engine.build.cache import StepCache
from dockyard.engine.build.context import BuildContext
from dockyard.engine.build.copy_steps import CopySteps
from dockyard.engine.build.metadata_steps import MetadataSteps
from dockyard.engine.build.options import PREDEFINED_ARGS, BuildOptions
from dockyard.engine.build.profile import BuildProfile
from dockyard.engine.build.sources import has_wildcard
from dockyard.engine.build.stage import DEFAULT_PATH, DEFAULT_SHELL, Stage, finish, short
from dockyard.engine.build.syntax import DockerfileError, Instruction, at_line
from dockyard.engine.image_commit import ChildImage, container_layer, write_child_image
from dockyard.engine.image_pull import parse_platform
from dockyard.engine.models import HostConfig
from dockyard.errors import DockyardError, InvalidParameter, NotFound
from dockyard.image.reference import parse_reference
from dockyard.image.store import go_architecture
from dockyard.kernel.interface import Kernel

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerService
    from dockyard.engine.images import ImageService

log = logging.getLogger("dockyard.build")


class Builder(MetadataSteps, CopySteps):
    def __init__(
        self,
        containers: ContainerService,
        images: ImageService,
        kernel: Kernel,
        context: BuildContext,
        opts: BuildOptions,
        emit: Callable[[dict[str, Any]], None],
        work_dir: str,
        pull: Callable[[str], Any] | None = None,
        profile: BuildProfile | None = None,
    ) -> None:
        self.containers = containers
        self.images = images
        self.kernel = kernel
        self.ctx = context
        self.opts = opts
        self._emit = emit
        self.work_dir = work_dir
        self._pull = pull
        self.escape = "\\"
        self.filename = "Dockerfile"
        self.meta_args: dict[str, str | None] = {}
        self.used_args: set[str] = set()
        self.stages: list[Stage] = []
        self.step = 0
        self.total = 0
        self._scratch = 0
        self.cache = StepCache(images, opts.cache_from)
        self.profile = profile or BuildProfile()
        self._cleanups: list[asyncio.Future[Any]] = []

    # -- output ---------------------------------------------------------------

    def out(self, text: str) -> None:
        if not self.opts.quiet:
            self._emit({"stream": text})

    # -- plan -----------------------------------------------------------------

    async def build(self) -> str:
        with self.profile.phase("parse+plan"):
            text, name = self.ctx.dockerfile(self.opts.dockerfile, self.kernel)
            self.filename = name
            self.ctx.drop_build_files(self.kernel, name)
            instructions, self.escape = syntax.parse(text)
            stages = self._plan(instructions)
        for tag in self.opts.tags:
            parse_reference(tag)  # a bad tag fails before any step
        built = False
        try:
            for stage in stages:
                await self._run_stage(stage)
            built = True
        finally:
            await self._finish_cleanups(built)
        final = stages[-1]
        if not final.image:
            raise InvalidParameter(
                "no image was generated: the Dockerfile makes no files nor config"
            )
        unused = sorted(
            k for k in self.opts.build_args if k not in self.used_args and k not in PREDEFINED_ARGS
        )
        if unused:
            self.out(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        self._emit({"aux": {"ID": final.image}})
        self.out(f"Successfully built {short(final.image)}\n")
        for tag in self.opts.tags:
            ref = str(parse_reference(tag))
            with self.profile.phase("tag"):
                self.images.name_image(final.image, ref)
            self.images.emit("tag", final.image, ref)
            self.out(f"Successfully tagged {ref}\n")
        if self.opts.quiet:
            self._emit({"stream": final.image + "\n"})
        return final.image

    def _plan(self, instructions: list[Instruction]) -> list[Stage]:
        """Stages up to the target, every problem found now rather than mid-build."""
        meta: list[Instruction] = []
        stages: list[Stage] = []
        for inst in instructions:
            if inst.cmd == "FROM":
                name = ""
                args = inst.args
                if len(args) == 3 and args[1].upper() == "AS":
                    name = args[2].lower()
                elif len(args) != 1:
                    raise DockerfileError(
                        f"{at_line(inst.line)}: FROM requires either one or three arguments"
                    )
                if name and any(s.name == name for s in stages):
                    raise DockerfileError(f"{at_line(inst.line)}: duplicate stage name {name!r}")
                stages.append(Stage(len(stages), name, inst, []))
            elif not stages:
                if inst.cmd != "ARG":
                    raise DockerfileError(
                        f"{at_line(inst.line)}: no build stage in current context "
                        f"({inst.cmd} before the first FROM)"
                    )
                meta.append(inst)
            else:
                stages[-1].instructions.append(inst)
        if not stages:
            raise DockerfileError("failed to parse Dockerfile: no FROM instruction")
        if self.opts.target:
            target = self.opts.target.lower()
            found = [s for s in stages if s.name == target]
            if not found:
                raise InvalidParameter(
                    f"failed to reach build target {self.opts.target} in Dockerfile"
                )
            stages = stages[: found[0].index + 1]
        # --from=NAME must be an earlier stage (or an image there is).
        for stage in stages:
            for inst in stage.instructions:
                ref = inst.flags.get("from")
                if ref is None and inst.sub is not None:
                    ref = inst.sub.flags.get("from")
                if ref is None or "$" in ref:
                    continue
                earlier = stages[: stage.index]
                if ref.isdigit():
                    if int(ref) >= stage.index:
                        raise DockerfileError(
                            f"{at_line(inst.line)}: invalid from flag value {ref}: refers to "
                            "the current or a later build stage"
                        )
                    continue
                if any(s.name == ref.lower() for s in earlier):
                    continue
                if any(s.name == ref.lower() for s in stages):
                    raise DockerfileError(
                        f"{at_line(inst.line)}: invalid from flag value {ref}: refers to "
                        "the current or a later build stage"
                    )
                try:
                    self.images.resolve(ref)
                except NotFound:
                    raise DockerfileError(
                        f"{at_line(inst.line)}: invalid from flag value {ref}: no build "
                        f"stage and no image named {ref}"
                    ) from None
        self._check_sources(stages)
        if self.opts.labels:
            label = Instruction(
                "LABEL",
                # dockerd's text for it: KEY=VALUE unquoted (as its history shows it)
                "LABEL " + " ".join(f"{k}={v}" for k, v in sorted(self.opts.labels.items())),
                0,
            )
            label.args = [x for k, v in sorted(self.opts.labels.items()) for x in (k, v)]
            label.flags = {"literal": "1"}
            stages[-1].instructions.append(label)
        self.total = len(meta) + sum(1 + len(s.instructions) for s in stages)
        for inst in meta:
            self._announce(inst)
            self._declare_arg(inst, self.meta_args, {})
        self.stages = stages
        return stages

    async def _finish_cleanups(self, built: bool) -> None:
        """Wait for the steps' cleanups (even when cancelled); the first failure of
        one is the build's, unless the build failed already."""
        tasks, self._cleanups = self._cleanups, []
        if not tasks:
            return
        with self.profile.phase("step cleanup waited for (rm container, unmount)"):
            gathered = asyncio.gather(*tasks, return_exceptions=True)
            try:
                results = await asyncio.shield(gathered)
            except asyncio.CancelledError:
                await gathered
                raise
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures and built:
            raise failures[0]
        for failure in failures:
            log.warning("build step cleanup failed: %s", failure)

    def _check_sources(self, stages: list[Stage]) -> None:
        """COPY/ADD sources of the context that are missing or outside it fail now."""
        root = self.ctx.source_root(self.kernel)
        try:
            for stage in stages:
                for inst in stage.instructions:
                    if inst.cmd not in ("COPY", "ADD") or "from" in inst.flags:
                        continue
                    for src in inst.args[:-1]:
                        if "$" in src or src.startswith(("<<", "http://", "https://")):
                            continue
                        if inst.json or has_wildcard(src):
                            continue
                        try:
                            root.resolve(src, inst.cmd)
                        except DockyardError as e:
                            raise DockerfileError(
                                f"{self.filename}:{inst.line}: {e.message}"
                            ) from None
        finally:
            root.close()

    def _announce(self, inst: Instruction) -> None:
        self.step += 1
        original = inst.original.split("\n", 1)[0]
        self.out(f"Step {self.step}/{self.total} : {original}\n")

    # -- stages -----------------------------------------------------------------

    async def _run_stage(self, stage: Stage) -> None:
        self._announce(stage.from_inst)
        await self._from(stage)
        for inst in stage.instructions:
            self._announce(inst)
            await self._dispatch(stage, inst)

    def _env(self, stage: Stage) -> dict[str, str]:
        """What `$VAR` expands from: the stage's ARGs, then its ENV over them."""
        env: dict[str, str] = {}
        for k, v in stage.args.items():
            if v is not None:
                env[k] = v
        for item in stage.config.get("Env") or []:
            k, _, v = item.partition("=")
            env[k] = v
        return env

    def _word(self, stage: Stage, text: str) -> str:
        return words.word(text, self._env(stage), self.escape)

    def _words(self, stage: Stage, text: str) -> list[str]:
        return words.words(text, self._env(stage), self.escape)

    async def _from(self, stage: Stage) -> None:
        inst = stage.from_inst
        meta_env = {k: v for k, v in self.meta_args.items() if v is not None}
        base = words.word(inst.args[0], meta_env, self.escape)
        platform = inst.flags.get("platform")
        if platform:
            platform = words.word(platform, meta_env, self.escape)
            want = parse_platform(platform)
            if (want.os, want.architecture) != ("linux", go_architecture()):
                raise InvalidParameter(
                    f"FROM --platform={platform}: only linux/{go_architecture()} images can be "
                    "built here"
                )
        if not base:
            raise InvalidParameter(f"FROM: base name ({inst.args[0]}) should not be blank")
        config: dict[str, Any]
        earlier = [s for s in self.stages[: stage.index] if s.name == base.lower()]
        if earlier:
            stage.image = earlier[-1].image
            config = copy.deepcopy(earlier[-1].config)
        elif base.lower() == "scratch":
            stage.image = ""
            config = {}
        else:
            stage.image = await self._base_image(base)
            config = copy.deepcopy(self.images.config(stage.image).get("config") or {})
        env = list(config.get("Env") or [])
        if not any(e.startswith("PATH=") for e in env):
            env.insert(0, DEFAULT_PATH)
        config["Env"] = env
        stage.config = config
        if stage.image:
            self.out(f" ---> {short(stage.image)}\n")
        triggers = list(config.get("OnBuild") or [])
        config["OnBuild"] = None
        if triggers:
            plural = "s" if len(triggers) > 1 else ""
            self.out(f"# Executing {len(triggers)} build trigger{plural}\n")
            for text in triggers:
                line = stage.from_inst.line
                where = f"{at_line(line)}: the base image's ONBUILD trigger {text!r}"
                trigger = syntax.parse_trigger(text, line, where)
                await self._dispatch(stage, trigger)

    async def _base_image(self, ref: str) -> str:
        if self.opts.pull and self._pull is not None:
            await self._pull(ref)
        try:
            return self.images.resolve(ref)
        except NotFound:
            if self._pull is None:
                raise
        await self._pull(ref)
        return self.images.resolve(ref)

    # -- instructions -------------------------------------------------------------

    async def _dispatch(self, stage: Stage, inst: Instruction) -> None:
        handler = getattr(self, "_do_" + inst.cmd.lower(), None)
        if handler is None:
            raise InvalidParameter(f"unknown instruction: {inst.cmd}")
        try:
            await handler(stage, inst)
        except DockerfileError:
            raise
        except DockyardError as e:
            if inst.line and not isinstance(e, run_step.StepFailed):
                e.message = f"{self.filename}:{inst.line}: {e.message}"
                e.args = (e.message,)
            raise

    def _shell(self, stage: Stage) -> list[str]:
        return list(stage.config.get("Shell") or DEFAULT_SHELL)

    async def _commit_meta(self, stage: Stage, comment: str) -> None:
        """A step that changes only the config: an image with an empty layer."""
        cache_cmd = [*self._shell(stage), "#(nop) ", comment]
        await self._commit(stage, cache_cmd, None)

    async def _commit(
        self,
        stage: Stage,
        cache_cmd: list[str],
        make: Callable[[], Any] | None,
    ) -> None:
        """Find the step in the cache, or make it: `make` (a coroutine function)
        returns the upper dir to commit (or None: no files changed), and is
        awaited only on a cache miss."""
        container_config = copy.deepcopy(stage.config)
        container_config["Cmd"] = cache_cmd
        child = ChildImage(
            config=copy.deepcopy(stage.config),
            created_by=" ".join(cache_cmd),
            author=stage.author,
            container_config=container_config,
        )
        hit = None
        if not self.opts.no_cache:
            with self.profile.phase("cache look-up"):
                hit = self.cache.local(stage.image, container_config)
                if hit is None:
                    hit = await finish(self.cache.from_sources(stage.image, child))
        if hit is not None:
            self.out(" ---> Using cache\n")
            stage.image = hit
            self.out(f" ---> {short(hit)}\n")
            return
        upper = None
        cleanup: Callable[[], Any] | None = None
        if make is not None:
            upper, cleanup = await make()
        try:
            parent = stage.image or None
            with self.profile.phase("layer diff+commit"):
                image_id = await self._write_image(parent, upper, child)
        except BaseException:
            if cleanup is not None:
                await cleanup()
            raise
        if cleanup is not None:
            # The step's container and overlay go while the next step runs; the
            # build waits for them before it answers (see build()).
            self._cleanups.append(asyncio.ensure_future(cleanup()))
        stage.image = image_id
        self.out(f" ---> {short(image_id)}\n")

    async def _write_image(self, parent: str | None, upper: str | None, child: ChildImage) -> str:
        blobs = self.images.blobs
        loop = asyncio.get_running_loop()

        def work() -> str:
            with blobs.lease():
                layer = container_layer(blobs, upper, parent) if upper else None
                image_id = write_child_image(blobs, parent, layer, child)

                async def register() -> None:
                    self.images.register_child(image_id, parent or "")

                # Named while the lease holds its layers: no prune can take them first.
                asyncio.run_coroutine_threadsafe(register(), loop).result()
                return image_id

        return await finish(asyncio.to_thread(work))  # type: ignore[no-any-return]

    # ARG

    def _declare_arg(
        self, inst: Instruction, scope: dict[str, str | None], env: dict[str, str]
    ) -> list[str]:
        declared = []
        for arg in inst.args:
            name, eq, default = arg.partition("=")
            if not name:
                raise InvalidParameter("ARG names can not be blank")
            value: str | None = words.word(default, env, self.escape) if eq else None
            if name in self.opts.build_args:
                self.used_args.add(name)
                given = self.opts.build_args[name]
                if given is not None:
                    value = given
            elif value is None and name in self.meta_args and scope is not self.meta_args:
                value = self.meta_args[name]  # re-declared in a stage: the global value
            scope[name] = value
            # History shows the declaration (its default), as dockerd's; a given
            # value reaches the cache through the RUN steps that see it.
            declared.append(arg if eq else name)
        return declared

    async def _do_arg(self, stage: Stage, inst: Instruction) -> None:
        declared = self._declare_arg(inst, stage.args, self._env(stage))
        await self._commit_meta(stage, "ARG " + " ".join(declared))

    # RUN

    def _build_env(self, stage: Stage) -> list[str]:
        """Build args in scope that no ENV overrides, as `k=v` (RUN sees them)."""
        env_keys = {e.partition("=")[0] for e in stage.config.get("Env") or []}
        out = []
        for name, value in sorted(stage.args.items()):
            if value is not None and name not in env_keys:
                out.append(f"{name}={value}")
        for name in PREDEFINED_ARGS:
            value = self.opts.build_args.get(name)
            if value is not None and name not in stage.args and name not in env_keys:
                out.append(f"{name}={value}")
        return out

    async def _do_run(self, stage: Stage, inst: Instruction) -> None:
        pipe_file = None
        if inst.json:
            cmd = list(inst.args)
        else:
            text = inst.args[0] if inst.args else ""
            if inst.heredocs:
                script = heredocs.run_script(text, inst)
                text, pipe_file = script.script, script.pipe_file
            cmd = [*self._shell(stage), text]
        if not stage.image:
            raise InvalidParameter("RUN needs a shell: the image has no files (FROM scratch)")
        build_env = self._build_env(stage)
        # The build args a RUN sees are part of its cache key (not the predefined ones).
        visible = [e for e in build_env if e.partition("=")[0] not in PREDEFINED_ARGS]
        # A script run from /dev/pipes is known by its content too.
        run_key = [*cmd, pipe_file[1]] if pipe_file else cmd
        cache_cmd = ([f"|{len(visible)}", *visible] if visible else []) + run_key

        async def make() -> tuple[str, Callable[[], Any]]:
            host_config = self._host_config()
            if pipe_file is not None:
                host_config.binds = [f"{self._pipe_dir(*pipe_file)}:{heredocs.PIPES_DIR}:ro"]
            req = run_step.RunRequest(
                image=stage.image,
                cmd=cmd,
                env=[*(stage.config.get("Env") or []), *build_env],
                user=stage.config.get("User") or "",
                working_dir=stage.config.get("WorkingDir") or "",
                host_config=host_config,
            )
            cid, upper = await run_step.run_container(
                self.containers, req, self.out, self.opts.force_remove, self.profile
            )
            removing = self.opts.remove or self.opts.force_remove
            if removing:
                self.out(f"Removing intermediate container {cid[:12]}\n")

            async def cleanup() -> None:
                if removing:
                    await run_step.remove(self.containers, cid, None)

            return upper, cleanup

        await self._commit(stage, cache_cmd, make)

    def _pipe_dir(self, name: str, content: str) -> str:
        """A directory (for /dev/pipes, read-only) holding the heredoc as an
        executable file, as BuildKit mounts it."""
        directory = self._scratch_dir()
        os.makedirs(directory, mode=0o755)
        path = os.path.join(directory, name)
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(content)
        os.chmod(path, 0o755)
        return directory

    def _host_config(self) -> HostConfig:
        mode = self.opts.network_mode
        return HostConfig(
            network_mode="bridge" if mode in ("", "default") else mode,
            extra_hosts=list(self.opts.extra_hosts) or None,
            shm_size=self.opts.shm_size,
            memory=self.opts.memory,
            memory_swap=self.opts.memory_swap,
            cpu_shares=self.opts.cpu_shares,
            cpu_period=self.opts.cpu_period,
            cpu_quota=self.opts.cpu_quota,
            cpuset_cpus=self.opts.cpuset_cpus,
            cpuset_mems=self.opts.cpuset_mems,
            cgroup_parent=self.opts.cgroup_parent,
        )
