"""Seccomp: Docker's default allow-list, Docker-format profiles, and their BPF programs.

The default profile is moby's `profiles/seccomp/default.json`, shipped as a data
file beside this module (`seccomp_default.json`, Docker's profile format,
Apache-2.0): an allow-list of ~370 system calls, argument rules (`personality`
personas, `clone` without namespace flags, `socket` without AF_ALG/AF_VSOCK) and
groups allowed only with a capability (CAP_SYS_ADMIN, CAP_SYS_PTRACE, ...).
Everything else is EPERM, so a system call added to a later kernel stays refused
until a profile names it.

Two forms, as in Docker:

- a *Docker profile* (that file, or `--security-opt seccomp=FILE`) has rules with
  `includes`/`excludes` (caps, arches, minKernel); `resolve` turns it, for one
  container's capabilities, into
- an *OCI profile* (`linux.seccomp` in config.json, which runc could apply too):
  the rules that apply, names and argument conditions only.

`compile_oci` turns an OCI profile into a classic BPF program with libseccomp
(through `pyseccomp`, a ctypes binding of libseccomp.so.2: no compiler, no build
step, works from any venv), once per profile: the daemon compiles when it writes
a bundle and stores the bytes in config.json (an annotation); the container init only loads
them. Only the native ABI is compiled in: i386 and x32 calls are refused (EPERM),
since Docker's profile allows them only for 32-bit images. Calls numbered above
the newest the profile names answer ENOSYS (what runc does), so libcs fall back
(clone3 -> clone, ...).
"""

from __future__ import annotations

import errno
import os
import sys

from dockyard.errors import InvalidParameter
from dockyard.runtime import lightjson as json

TYPE_CHECKING = False  # typing costs ~2 ms to import; annotations are strings here

if TYPE_CHECKING:
    from typing import Any

DEFAULT_PROFILE_PATH = os.path.join(os.path.dirname(__file__), "seccomp_default.json")

# Go's GOARCH names (what profiles' includes/excludes.arches use) per machine.
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "riscv64": "riscv64", "s390x": "s390x"}
_AUDIT_ARCH = {"x86_64": 0xC000003E}
_X32_SYSCALL_BIT = 0x40000000

# x86_64 numbers of calls newer than libseccomp 2.5.4's tables (Debian 12), which
# Docker's profile names: compiled by number, so the verdict does not depend on the
# libseccomp release (asm/unistd_64.h).
_NEWER_X86_64 = {
    "uretprobe": 335,
    "statmount": 457,
    "listmount": 458,
    "lsm_get_self_attr": 459,
    "lsm_set_self_attr": 460,
    "lsm_list_modules": 461,
    "mseal": 462,
    "setxattrat": 463,
    "getxattrat": 464,
    "listxattrat": 465,
    "removexattrat": 466,
}

_ACTIONS = (
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_LOG",
)
_OPS = (
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
)

# classic BPF, for the ENOSYS prologue
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_RET_K = 0x06
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000


def _machine() -> str:
    return os.uname().machine


def _kernel_version() -> tuple[int, int]:
    parts = os.uname().release.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


_DOCKER_PROFILE: list[dict] = []


def default_docker_profile() -> dict:
    if not _DOCKER_PROFILE:
        with open(DEFAULT_PROFILE_PATH, "rb") as f:
            _DOCKER_PROFILE.append(json.loads(f.read()))
    return _DOCKER_PROFILE[0]


def parse_docker_profile(text: str | bytes) -> dict:
    """A Docker-format profile (what `--security-opt seccomp=` carries), checked.

    Every refusal names the field: an unknown action, operator, argument index
    or system call name is the user's typo, not something to skip silently.
    """
    try:
        profile = json.loads(text)
    except ValueError as exc:
        raise InvalidParameter(f"Decoding seccomp profile failed: {exc}") from None
    if not isinstance(profile, dict):
        raise InvalidParameter("Decoding seccomp profile failed: not a JSON object")
    if profile.get("listenerPath"):
        raise InvalidParameter(
            "seccomp profile: listenerPath (SCMP_ACT_NOTIFY) is not supported by dockyard"
        )
    _check_action(profile.get("defaultAction"), "defaultAction")
    rules = profile.get("syscalls") or []
    if not isinstance(rules, list):
        raise InvalidParameter("seccomp profile: syscalls must be a list")
    for i, rule in enumerate(rules):
        where = f"syscalls[{i}]"
        if not isinstance(rule, dict):
            raise InvalidParameter(f"seccomp profile: {where} must be an object")
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        if not names:
            raise InvalidParameter(f"seccomp profile: {where} names no system call")
        for name in names:
            if not isinstance(name, str) or _syscall_unknown(name):
                raise InvalidParameter(
                    f"seccomp profile: {where}.names: unknown system call {name!r}"
                )
        _check_action(rule.get("action"), f"{where}.action")
        for j, arg in enumerate(rule.get("args") or []):
            if arg.get("op") not in _OPS:
                raise InvalidParameter(
                    f"seccomp profile: {where}.args[{j}].op: unknown operator {arg.get('op')!r}"
                )
            if not 0 <= int(arg.get("index", -1)) <= 5:
                raise InvalidParameter(f"seccomp profile: {where}.args[{j}].index must be 0 to 5")
    return profile


# hashlib and base64 cost a few ms to import: only a bundle that needs them pays
# (CPython's built-in _sha256 is the same digest without OpenSSL's binding).
def _sha256(text: str) -> str:
    try:
        from _sha256 import sha256
    except ImportError:
        from hashlib import sha256

    return sha256(text.encode()).hexdigest()


def _b64():  # noqa: ANN202 - the base64 module
    import base64

    return base64


def _check_action(action: Any, where: str) -> None:
    if action not in _ACTIONS:
        raise InvalidParameter(f"seccomp profile: {where}: unknown action {action!r}")


def _syscall_unknown(name: str) -> bool:
    """A name no libseccomp table knows for any architecture (a typo)."""
    if name in _NEWER_X86_64:
        return False
    pyseccomp = _import_pyseccomp()

    try:
        return pyseccomp.resolve_syscall(pyseccomp.Arch.X86_64, name) == -1
    except (OSError, ValueError):
        return True


def resolve(
    profile: dict,
    capabilities: list[str],
    machine: str | None = None,
    kernel: tuple[int, int] | None = None,
) -> dict:
    """The OCI profile that a Docker profile means for a container with these
    capabilities (its bounding set), as moby's setupSeccomp decides it."""
    goarch = _GOARCH.get(machine or _machine(), machine or _machine())
    running = kernel or _kernel_version()
    held = set(capabilities)
    rules: list[dict] = []
    for rule in profile.get("syscalls") or []:
        inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
        if inc.get("arches") and goarch not in inc["arches"]:
            continue
        if exc.get("arches") and goarch in exc["arches"]:
            continue
        if inc.get("caps") and not all(c in held for c in inc["caps"]):
            continue
        if exc.get("caps") and any(c in held for c in exc["caps"]):
            continue
        if inc.get("minKernel"):
            major, _, minor = str(inc["minKernel"]).partition(".")
            if running < (int(major), int(minor or 0)):
                continue
        out: dict = {
            "names": list(rule.get("names") or [rule["name"]]),
            "action": rule["action"],
        }
        if rule.get("errnoRet") is not None:
            out["errnoRet"] = int(rule["errnoRet"])
        if rule.get("args"):
            out["args"] = [
                {
                    "index": int(a["index"]),
                    "value": int(a.get("value", 0)),
                    "valueTwo": int(a.get("valueTwo", 0)),
                    "op": a["op"],
                }
                for a in rule["args"]
            ]
        rules.append(out)
    oci: dict = {
        "defaultAction": profile["defaultAction"],
        "architectures": ["SCMP_ARCH_X86_64"] if goarch == "amd64" else [],
        "syscalls": rules,
    }
    if profile.get("defaultErrnoRet") is not None:
        oci["defaultErrnoRet"] = int(profile["defaultErrnoRet"])
    return oci


def default_profile(capabilities: list[str]) -> dict:
    """Docker's default profile (OCI form) for a container with these capabilities.
    Shared between calls (cached per capability set): do not modify it."""
    return _default_for(tuple(sorted(set(capabilities))))


_DEFAULT_CACHE: dict[tuple[str, ...], dict] = {}


def _default_for(capabilities: tuple[str, ...]) -> dict:
    profile = _DEFAULT_CACHE.get(capabilities)
    if profile is None:
        if len(_DEFAULT_CACHE) >= 64:
            _DEFAULT_CACHE.clear()
            _BY_IDENTITY.clear()
            _ANNOTATIONS.clear()
        profile = _DEFAULT_CACHE[capabilities] = resolve(
            default_docker_profile(), list(capabilities)
        )
    return profile


def _nr(name: str, arch: int) -> int | None:
    """This architecture's number for a call, None if it has none (another arch's)."""
    pyseccomp = _import_pyseccomp()

    nr = pyseccomp.resolve_syscall(arch, name)
    if nr >= 0:
        return nr
    if arch == pyseccomp.Arch.X86_64:
        return _NEWER_X86_64.get(name)
    return None


def _action(action: str, errno_ret: int | None) -> int:
    pyseccomp = _import_pyseccomp()

    if action == "SCMP_ACT_ALLOW":
        return pyseccomp.ALLOW
    if action == "SCMP_ACT_ERRNO":
        return pyseccomp.ERRNO(errno.EPERM if errno_ret is None else errno_ret)
    if action in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return pyseccomp.KILL_THREAD
    if action == "SCMP_ACT_KILL_PROCESS":
        return pyseccomp.KILL_PROCESS
    if action == "SCMP_ACT_TRAP":
        return pyseccomp.TRAP
    if action == "SCMP_ACT_TRACE":
        return pyseccomp.TRACE(errno.EPERM if errno_ret is None else errno_ret)
    if action == "SCMP_ACT_LOG":
        return pyseccomp.LOG
    raise InvalidParameter(f"seccomp profile: unknown action {action!r}")


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    # struct sock_filter {u16 code; u8 jt, jf; u32 k} (no struct: one module less to load)
    o = sys.byteorder
    return code.to_bytes(2, o) + jt.to_bytes(1, o) + jf.to_bytes(1, o) + k.to_bytes(4, o)


def compile_oci(profile: dict, machine: str | None = None) -> bytes | None:
    """The BPF program (struct sock_filter[]) for an OCI seccomp profile, compiled
    once per distinct profile in this process. None where this machine has no
    compiler here (the profile is then not applied)."""
    machine = machine or _machine()
    known = _BY_IDENTITY.get((id(profile), machine))
    if known is not None and known[0] is profile:  # a cached default: skip the hashing
        return known[1]
    text = json.dumps(profile, separators=(",", ":"), sort_keys=True)
    program = _compile(_sha256(text), text, machine)
    if any(profile is p for p in _default_profiles()):
        _BY_IDENTITY[(id(profile), machine)] = (profile, program)
    return program


# Programs of the cached default profiles, by the profile object (kept alive by its cache).
_BY_IDENTITY: dict[tuple[int, str], tuple[dict, bytes | None]] = {}


def _default_profiles() -> list[dict]:
    return [v for v in _DEFAULT_CACHE.values()]


# Kept for callers that named it so.
compile_profile = compile_oci


# Bump when what _compile emits for a profile changes: cached programs are then
# compiled again rather than loaded.
_CACHE_FORMAT = "1"
# Not a valid container id (":" is outside runc's id characters): no id collides with it.
CACHE_DIR_NAME = ":seccomp-cache"
CACHE_MAX = 64


def compile_cached(profile: dict, root: str = "") -> bytes | None:
    """compile_oci for a process that lives for one container (`dockyard-runtime
    create`/`exec`): the program is kept under <root>/seccomp-cache/, named by the
    sha256 of the canonical profile, so every later container with that profile
    only reads its bytes (libseccomp's compile of Docker's profile is ~10 ms plus
    pyseccomp's import). `root` is dockyard-runtime's --root: root's own, 0700."""
    machine = _machine()
    if machine not in _AUDIT_ARCH or not root:
        return compile_oci(profile, machine)
    text = json.dumps(profile, separators=(",", ":"), sort_keys=True)
    cache = os.path.join(root, CACHE_DIR_NAME)
    path = os.path.join(cache, f"{_sha256(f'{_CACHE_FORMAT}:{machine}:{text}')}.bpf")
    try:
        with open(path, "rb") as f:
            program = f.read()
        if program and len(program) % 8 == 0:  # whole sock_filter entries (not torn)
            return program
    except OSError:
        pass
    program = _compile(_sha256(text), text, machine)
    if program is not None:
        from dockyard.runtime.atomic_write import write_atomic

        try:
            os.makedirs(cache, 0o700, exist_ok=True)
            names = os.listdir(cache)
            if len(names) >= CACHE_MAX:  # a few profiles in use: start over, not grow
                for name in names:
                    os.unlink(os.path.join(cache, name))
            write_atomic(path, program, durable=False)
        except OSError:
            pass  # a cache we cannot write is a slower next start, not a failure
    return program


def _import_pyseccomp():  # noqa: ANN202 - the pyseccomp module
    try:
        import pyseccomp
    except ImportError:
        # dockyard-runtime's launcher runs `python -S` (no site-packages: ~5 ms of
        # every command); the compiler is there, so this rare path adds them.
        import site

        site.main()
        import pyseccomp
    return pyseccomp


# Programs compiled in this process, by (digest, machine): a dict, not functools'
# lru_cache, so that `dockyard-runtime run` does not import functools (and collections).
_COMPILED: dict[tuple[str, str], bytes | None] = {}


def _compile(digest: str, profile_json: str, machine: str) -> bytes | None:
    key = (digest, machine)
    if key not in _COMPILED:
        if len(_COMPILED) >= 32:
            _COMPILED.clear()
        _COMPILED[key] = _compile_now(profile_json, machine)
    return _COMPILED[key]


def _compile_now(profile_json: str, machine: str) -> bytes | None:
    if machine not in _AUDIT_ARCH:
        return None
    pyseccomp = _import_pyseccomp()

    profile = json.loads(profile_json)
    arch = pyseccomp.Arch.X86_64
    default = _action(profile.get("defaultAction", ""), profile.get("defaultErrnoRet"))
    filt = pyseccomp.SyscallFilter(default)
    # Other ABIs (i386, x32) are refused: libseccomp answers them with this.
    filt.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.ERRNO(errno.EPERM))
    # A binary tree over the numbers: ~9 comparisons per call instead of ~370.
    filt.set_attr(pyseccomp.Attr.CTL_OPTIMIZE, 2)
    newest = -1
    for rule in profile.get("syscalls") or []:
        action = _action(rule.get("action", ""), rule.get("errnoRet"))
        conds = [
            pyseccomp.Arg(
                int(a["index"]),
                getattr(pyseccomp, a["op"].removeprefix("SCMP_CMP_")),
                int(a.get("value", 0)),
                int(a.get("valueTwo", 0)),
            )
            for a in rule.get("args") or []
        ]
        indexes = [int(a["index"]) for a in rule.get("args") or []]
        for name in rule.get("names") or []:
            nr = _nr(name, arch)
            if nr is None:
                continue  # another architecture's call
            newest = max(newest, nr)
            if action == default:
                continue  # libseccomp refuses a rule that repeats the default
            if len(set(indexes)) < len(indexes):
                # Several conditions on one argument: each its own rule (OR), as runc does.
                for cond in conds:
                    filt.add_rule(action, nr, cond)
            else:
                filt.add_rule(action, nr, *conds)
    program = _export(filt)
    if default == pyseccomp.ALLOW or newest < 0:
        return program
    # Newer than anything the profile names: ENOSYS, before libseccomp's program
    # (whose jumps are relative, so it runs unchanged after these six).
    prologue = [
        _insn(_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        _insn(_JEQ_K, 0, 4, _AUDIT_ARCH[machine]),
        _insn(_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        _insn(_JGE_K, 2, 0, _X32_SYSCALL_BIT),  # x32: libseccomp's bad-arch answer
        _insn(_JGE_K, 0, 1, newest + 1),
        _insn(_RET_K, 0, 0, RET_ERRNO | errno.ENOSYS),
    ]
    return b"".join(prologue) + program


def _export(filt: Any) -> bytes:
    fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
    try:
        with open(fd, "rb", closefd=False) as f:
            filt.export_bpf(f)
        return os.pread(fd, 1 << 20, 0)
    finally:
        os.close(fd)


# The annotation the daemon puts the compiled program in (config.json stays one file,
# written once): "<sha256 of the canonical linux.seccomp JSON>:<base64 program>".
ANNOTATION_PROGRAM = "org.dockyard.seccomp.bpf"


def _digest(profile: dict) -> str:
    text = json.dumps(profile, separators=(",", ":"), sort_keys=True)
    return _sha256(text)


def program_annotation(profile: dict) -> str | None:
    """The annotation value for this profile (compiled once per profile), or None where
    nothing is compiled for this machine."""
    machine = _machine()
    known = _ANNOTATIONS.get(id(profile))
    if known is not None and known[0] is profile:
        return known[1]
    program = compile_oci(profile, machine)
    value = None if program is None else f"{_digest(profile)}:{_b64().b64encode(program).decode()}"
    if any(profile is p for p in _default_profiles()):
        _ANNOTATIONS[id(profile)] = (profile, value)
    return value


_ANNOTATIONS: dict[int, tuple[dict, str | None]] = {}


def program_from_annotation(profile: dict, value: str | None) -> bytes | None:
    """The program the daemon compiled for exactly this profile, or None."""
    if not value:
        return None
    digest, _, encoded = value.partition(":")
    if digest != _digest(profile):
        return None  # written for another profile (config.json edited since)
    try:
        return _b64().b64decode(encoded, validate=True)
    except ValueError:
        return None
