"""OCI lifecycle hooks: each gets the container's state JSON on stdin.

Where each kind runs (runtime-spec config.md#posix-platform-hooks):
prestart and createRuntime in the runtime's namespaces once the container's
namespaces exist, createContainer in the container's mount namespace before
pivot_root, startContainer in the container just before the command's exec,
poststart after `start`, poststop after `delete`.
"""

from __future__ import annotations

from dockyard.errors import RuntimeFailure
from dockyard.runtime import lightjson as json

HOOK_KINDS = (
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
)


def hooks_of(config: dict, kind: str) -> list[dict]:
    hooks = (config.get("hooks") or {}).get(kind) or []
    if not isinstance(hooks, list):
        raise RuntimeFailure(f"hooks.{kind}: must be a list")
    for i, hook in enumerate(hooks):
        if not isinstance(hook, dict) or not isinstance(hook.get("path"), str):
            raise RuntimeFailure(f"hooks.{kind}[{i}]: a hook needs a path")
        if not hook["path"].startswith("/"):
            raise RuntimeFailure(f"hooks.{kind}[{i}].path {hook['path']!r}: must be absolute")
    return hooks


def run_hooks(config: dict, kind: str, state: dict) -> None:
    """Run the hooks of `kind` in order; the first failure raises RuntimeFailure."""
    hooks = hooks_of(config, kind)
    if not hooks:
        return
    payload = json.dumps(state).encode()
    for i, hook in enumerate(hooks):
        args = list(hook.get("args") or [hook["path"]])
        env = {}
        for entry in hook.get("env") or []:
            key, _, value = str(entry).partition("=")
            env[key] = value
        timeout = hook.get("timeout")
        if timeout is not None and (not isinstance(timeout, int) or timeout <= 0):
            raise RuntimeFailure(f"hooks.{kind}[{i}].timeout: must be a positive integer")
        import subprocess  # only bundles with hooks pay for it

        try:
            done = subprocess.run(
                args,
                executable=hook["path"],
                input=payload,
                env=env,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeFailure(
                f"error running {kind} hook #{i} ({hook['path']}): timed out after {timeout}s"
            ) from None
        except OSError as exc:
            raise RuntimeFailure(
                f"error running {kind} hook #{i} ({hook['path']}): {exc}"
            ) from None
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).decode(errors="replace").strip()
            raise RuntimeFailure(
                f"error running {kind} hook #{i} ({hook['path']}): exit status "
                f"{done.returncode}" + (f", {detail}" if detail else "")
            )
