"""The seccomp profile and its BPF program, run through a small BPF interpreter."""

from __future__ import annotations

import errno
import struct

from dockyard.runtime.seccomp import (
    RET_ALLOW,
    RET_ERRNO,
    X86_64_SYSCALLS,
    compile_profile,
    default_profile,
)
from dockyard.runtime.spec import DEFAULT_CAPABILITIES

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
NR = {
    "read": 0,
    "write": 1,
    "execve": 59,
    "capset": 126,
    "prctl": 157,
    "setresuid": 117,
    **X86_64_SYSCALLS,
}


def run_bpf(
    program: bytes, nr: int, args: tuple[int, ...] = (), arch: int = AUDIT_ARCH_X86_64
) -> int:
    """Classic BPF, the subset seccomp programs use here, over struct seccomp_data."""
    padded = list(args) + [0] * (6 - len(args))
    data = struct.pack("<iIQ6Q", nr, arch, 0, *padded)
    insns = [struct.unpack("HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x54:
            acc &= k
        elif code == 0x15:
            pc += jt if acc == k else jf
        elif code == 0x35:
            pc += jt if acc >= k else jf
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected BPF opcode {code:#x}")


def program(caps: list[str] = DEFAULT_CAPABILITIES) -> bytes:
    prog = compile_profile(default_profile(caps), "x86_64")
    assert prog is not None
    return prog


def test_ordinary_calls_are_allowed() -> None:
    prog = program()
    for name in ("read", "write", "execve", "capset", "prctl", "setresuid"):
        assert run_bpf(prog, NR[name]) == RET_ALLOW, name


def test_dockers_refusals() -> None:
    prog = program()
    eperm = RET_ERRNO | errno.EPERM
    for name in (
        "mount",
        "umount2",
        "unshare",
        "setns",
        "keyctl",
        "bpf",
        "kexec_load",
        "init_module",
        "reboot",
        "ptrace",
    ):
        expected = (
            RET_ALLOW if name == "ptrace" else eperm
        )  # ptrace is allowed since kernel 4.8, as in Docker
        assert run_bpf(prog, NR.get(name, 101)) == expected, name
    assert (
        run_bpf(prog, NR["clone3"]) == RET_ERRNO | errno.ENOSYS
    )  # so that libc falls back to clone


def test_clone_refused_only_with_namespace_flags() -> None:
    prog = program()
    sigchld = 17
    assert run_bpf(prog, NR["clone"], (sigchld | 0x00100000,)) == RET_ALLOW  # a thread / fork
    assert (
        run_bpf(prog, NR["clone"], (sigchld | 0x10000000,)) == RET_ERRNO | errno.EPERM
    )  # CLONE_NEWUSER
    assert run_bpf(prog, NR["clone"], (0x40000000,)) == RET_ERRNO | errno.EPERM  # CLONE_NEWNET


def test_capabilities_lift_their_restrictions() -> None:
    prog = program([*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN", "CAP_SYS_TIME"])
    assert run_bpf(prog, NR["mount"]) == RET_ALLOW
    assert run_bpf(prog, NR["clone"], (0x10000000,)) == RET_ALLOW
    assert run_bpf(prog, NR["settimeofday"]) == RET_ALLOW
    assert run_bpf(prog, NR["init_module"]) == RET_ERRNO | errno.EPERM


def test_other_abis_are_refused() -> None:
    prog = program()
    assert run_bpf(prog, 3, arch=AUDIT_ARCH_I386) == RET_ERRNO | errno.EPERM
    assert run_bpf(prog, 0x40000000 | 165) == RET_ERRNO | errno.EPERM  # x32 mount


def test_profile_is_in_the_oci_config_unless_privileged() -> None:
    from dockyard.runtime.spec import RunSpec

    def spec(**kw: object) -> dict:
        return RunSpec(
            args=["true"],
            env=[],
            hostname="h",
            rootfs_lower=["/l"],
            rootfs_upper="/u",
            rootfs_work="/w",
            **kw,
        ).to_oci("c")

    profile = spec()["linux"]["seccomp"]
    assert profile["defaultAction"] == "SCMP_ACT_ALLOW"
    assert "mount" in profile["syscalls"][0]["names"]
    assert "seccomp" not in spec(privileged=True)["linux"]
    assert compile_profile(profile, "riscv64") is None  # no table: not applied


def test_personality_only_with_dockers_personas() -> None:
    prog = program()
    for persona in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF):
        assert run_bpf(prog, NR["personality"], (persona,)) == RET_ALLOW, hex(persona)
    eperm = RET_ERRNO | errno.EPERM
    addr_no_randomize, read_implies_exec = 0x0040000, 0x0400000
    for persona in (addr_no_randomize, read_implies_exec, addr_no_randomize | 0x8, 0x1):
        assert run_bpf(prog, NR["personality"], (persona,)) == eperm, hex(persona)
    # The kernel reads an unsigned int: high bits cannot smuggle a persona past the check.
    assert run_bpf(prog, NR["personality"], (0x1_0000_0000 | addr_no_randomize,)) == eperm
    # Even CAP_SYS_ADMIN does not open it (as in Docker).
    admin = program([*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"])
    assert run_bpf(admin, NR["personality"], (addr_no_randomize,)) == eperm


def test_pidfd_getfd_process_madvise_and_fanotify_init() -> None:
    prog = program()
    eperm = RET_ERRNO | errno.EPERM
    for name in ("pidfd_getfd", "process_madvise", "fanotify_init"):
        assert run_bpf(prog, NR[name]) == eperm, name
    # Granted with the capability Docker ties each one to.
    ptrace = program([*DEFAULT_CAPABILITIES, "CAP_SYS_PTRACE"])
    assert run_bpf(ptrace, NR["pidfd_getfd"]) == RET_ALLOW
    assert run_bpf(ptrace, NR["process_madvise"]) == RET_ALLOW
    assert run_bpf(ptrace, NR["fanotify_init"]) == eperm
    admin = program([*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"])
    assert run_bpf(admin, NR["fanotify_init"]) == RET_ALLOW


def test_syscalls_newer_than_the_profile_answer_enosys() -> None:
    enosys = RET_ERRNO | errno.ENOSYS
    for caps in (DEFAULT_CAPABILITIES, [*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN", "CAP_SYS_NICE"]):
        prog = program(caps)
        # The newest call Docker's profile knows stays as the profile says...
        assert run_bpf(prog, NR["futex_waitv"]) == RET_ALLOW
        assert run_bpf(prog, NR["memfd_secret"]) == RET_ALLOW
        # ...and everything above it is ENOSYS, so libcs fall back.
        for nr in (451, 452, 462, 1000, 0x3FFFFFFF):
            assert run_bpf(prog, nr) == enosys, nr
    assert run_bpf(program(), NR["set_mempolicy_home_node"]) == RET_ERRNO | errno.EPERM
    nice = program([*DEFAULT_CAPABILITIES, "CAP_SYS_NICE"])
    assert run_bpf(nice, NR["set_mempolicy_home_node"]) == RET_ALLOW
    # x32 numbers are still refused as another ABI, not answered ENOSYS.
    assert run_bpf(program(), 0x40000000 | 1000) == RET_ERRNO | errno.EPERM


def test_profile_without_names_has_no_enosys_range() -> None:
    prog = compile_profile({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}, "x86_64")
    assert prog is not None
    assert run_bpf(prog, 1000) == RET_ALLOW
