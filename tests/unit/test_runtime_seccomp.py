"""Seccomp profiles and their libseccomp programs, run through a small BPF interpreter.

The interpreter is written from the kernel's classic-BPF semantics, independently
of libseccomp; the reference verdicts come from reading the profile's rules
directly. Where they agree on every call of the profile, libseccomp compiled
what the profile says.
"""

from __future__ import annotations

import errno
import struct
from pathlib import Path

import pytest

from dockyard.errors import InvalidParameter
from dockyard.runtime import seccomp
from dockyard.runtime.seccomp import (
    RET_ALLOW,
    RET_ERRNO,
    compile_oci,
    default_docker_profile,
    default_profile,
    parse_docker_profile,
    resolve,
)
from dockyard.runtime.spec import DEFAULT_CAPABILITIES

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
EPERM = RET_ERRNO | errno.EPERM
ENOSYS = RET_ERRNO | errno.ENOSYS
ALL_CAPS = [
    "CAP_SYS_ADMIN",
    "CAP_SYS_PTRACE",
    "CAP_SYS_BOOT",
    "CAP_SYS_MODULE",
    "CAP_SYS_TIME",
    "CAP_SYS_NICE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_PACCT",
    "CAP_SYSLOG",
    "CAP_SYS_TTY_CONFIG",
    "CAP_DAC_READ_SEARCH",
    "CAP_BPF",
    "CAP_PERFMON",
]


def nr(name: str) -> int:
    import pyseccomp

    n = pyseccomp.resolve_syscall(pyseccomp.Arch.X86_64, name)
    return n if n >= 0 else seccomp._NEWER_X86_64[name]


def run_bpf(
    program: bytes, nr: int, args: tuple[int, ...] = (), arch: int = AUDIT_ARCH_X86_64
) -> int:
    """Classic BPF over struct seccomp_data (the kernel's semantics, the opcodes
    seccomp programs use)."""
    padded = list(args) + [0] * (6 - len(args))
    data = struct.pack("<iIQ6Q", nr, arch, 0, *padded)
    insns = [struct.unpack("HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    acc, mem, pc = 0, [0] * 16, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:  # ld [k]
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x00:  # ld #k
            acc = k
        elif code == 0x60:  # ld M[k]
            acc = mem[k]
        elif code == 0x02:  # st M[k]
            mem[k] = acc
        elif code == 0x54:  # and #k
            acc &= k
        elif code == 0x44:  # or #k
            acc |= k
        elif code == 0x05:  # ja k
            pc += k
        elif code == 0x15:  # jeq #k
            pc += jt if acc == k else jf
        elif code == 0x25:  # jgt #k
            pc += jt if acc > k else jf
        elif code == 0x35:  # jge #k
            pc += jt if acc >= k else jf
        elif code == 0x45:  # jset #k
            pc += jt if acc & k else jf
        elif code == 0x06:  # ret #k
            return k
        elif code == 0x16:  # ret a
            return acc
        else:
            raise AssertionError(f"unexpected BPF opcode {code:#x}")


def _arg_matches(cond: dict, args: tuple[int, ...]) -> bool:
    value = args[cond["index"]] if cond["index"] < len(args) else 0
    v, two, op = cond["value"], cond.get("valueTwo", 0), cond["op"]
    return {
        "SCMP_CMP_EQ": value == v,
        "SCMP_CMP_NE": value != v,
        "SCMP_CMP_LT": value < v,
        "SCMP_CMP_LE": value <= v,
        "SCMP_CMP_GT": value > v,
        "SCMP_CMP_GE": value >= v,
        "SCMP_CMP_MASKED_EQ": value & v == two,
    }[op]


def _ret(action: str, errno_ret: int | None) -> int:
    if action == "SCMP_ACT_ALLOW":
        return RET_ALLOW
    assert action == "SCMP_ACT_ERRNO", action
    return RET_ERRNO | (errno.EPERM if errno_ret is None else errno_ret)


def expected(profile: dict, name: str, args: tuple[int, ...] = ()) -> int:
    """The verdict read straight from an OCI profile's rules."""
    verdicts = set()
    for rule in profile["syscalls"]:
        if name not in rule["names"]:
            continue
        conds = rule.get("args") or []
        if all(_arg_matches(c, args) for c in conds):
            verdicts.add(_ret(rule["action"], rule.get("errnoRet")))
    assert len(verdicts) <= 1, (name, verdicts)  # Docker's rules never conflict
    if verdicts:
        return verdicts.pop()
    return _ret(profile["defaultAction"], profile.get("defaultErrnoRet"))


def program(caps: list[str] = DEFAULT_CAPABILITIES) -> bytes:
    prog = compile_oci(default_profile(caps), "x86_64")
    assert prog is not None
    return prog


# Arguments that cross each argument rule of Docker's profile: personas, clone
# flags with and without namespace bits, socket families around AF_ALG/AF_VSOCK.
SAMPLE_ARGS = [
    (),
    (0,),
    (8,),
    (0x20008,),
    (0xFFFFFFFF,),
    (0x0040000,),
    (0x1_0000_0000,),
    (17 | 0x00100000,),
    (0x10000000,),
    (0x40000000 | 17,),
    (0x00020000,),
    (1,),
    (2,),
    (37,),
    (38,),
    (39,),
    (40,),
    (41,),
]


@pytest.mark.parametrize(
    "caps",
    [DEFAULT_CAPABILITIES, [], [*DEFAULT_CAPABILITIES, *ALL_CAPS], ["CAP_SYS_PTRACE"]],
    ids=["default", "none", "all", "ptrace"],
)
def test_libseccomp_program_matches_the_profile_on_every_call(caps: list[str]) -> None:
    profile = default_profile(caps)
    prog = program(caps)
    names = {n for r in default_docker_profile()["syscalls"] for n in r["names"]}
    checked = 0
    for name in sorted(names):
        try:
            number = nr(name)
        except (KeyError, OSError):
            continue  # not an x86_64 call
        for args in SAMPLE_ARGS:
            assert run_bpf(prog, number, args) == expected(profile, name, args), (name, args)
            checked += 1
    assert checked > 350 * len(SAMPLE_ARGS)


def test_ordinary_calls_are_allowed() -> None:
    prog = program()
    for name in ("read", "write", "execve", "capset", "prctl", "setresuid", "ptrace"):
        assert run_bpf(prog, nr(name)) == RET_ALLOW, name


def test_dockers_refusals() -> None:
    prog = program()
    for name in ("mount", "umount2", "unshare", "setns", "keyctl", "bpf", "kexec_load"):
        assert run_bpf(prog, nr(name)) == EPERM, name
    for name in ("init_module", "reboot", "chroot", "open_by_handle_at", "add_key"):
        assert run_bpf(program([]), nr(name)) == EPERM, name
    assert run_bpf(prog, nr("clone3")) == ENOSYS  # so that libc falls back to clone


def test_clone_refused_only_with_namespace_flags() -> None:
    prog = program()
    sigchld = 17
    assert run_bpf(prog, nr("clone"), (sigchld | 0x00100000,)) == RET_ALLOW  # a fork
    assert run_bpf(prog, nr("clone"), (sigchld | 0x10000000,)) == EPERM  # CLONE_NEWUSER
    assert run_bpf(prog, nr("clone"), (0x40000000,)) == EPERM  # CLONE_NEWNET


def test_socket_refuses_af_alg_and_af_vsock() -> None:
    prog = program()
    for family in (1, 2, 10, 16, 17, 39, 44):
        assert run_bpf(prog, nr("socket"), (family, 1, 0)) == RET_ALLOW, family
    assert run_bpf(prog, nr("socket"), (38, 5, 0)) == EPERM  # AF_ALG
    assert run_bpf(prog, nr("socket"), (40, 1, 0)) == EPERM  # AF_VSOCK


def test_capabilities_lift_their_groups() -> None:
    admin = program([*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN", "CAP_SYS_TIME"])
    assert run_bpf(admin, nr("mount")) == RET_ALLOW
    assert run_bpf(admin, nr("clone"), (0x10000000,)) == RET_ALLOW
    assert run_bpf(admin, nr("clone3")) == RET_ALLOW
    assert run_bpf(admin, nr("settimeofday")) == RET_ALLOW
    assert run_bpf(admin, nr("init_module")) == EPERM
    boot = program([*DEFAULT_CAPABILITIES, "CAP_SYS_BOOT"])
    assert run_bpf(boot, nr("reboot")) == RET_ALLOW
    assert run_bpf(program(), nr("reboot")) == EPERM


def test_other_abis_are_refused() -> None:
    prog = program()
    assert run_bpf(prog, 3, arch=AUDIT_ARCH_I386) == EPERM
    assert run_bpf(prog, 0x40000000 | 165) == EPERM  # x32 mount
    assert run_bpf(prog, 0x40000000 | 1000) == EPERM  # x32, not ENOSYS


def test_personality_only_with_dockers_personas() -> None:
    prog = program()
    for persona in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF):
        assert run_bpf(prog, nr("personality"), (persona,)) == RET_ALLOW, hex(persona)
    addr_no_randomize, read_implies_exec = 0x0040000, 0x0400000
    for persona in (addr_no_randomize, read_implies_exec, addr_no_randomize | 0x8, 0x1):
        assert run_bpf(prog, nr("personality"), (persona,)) == EPERM, hex(persona)
    admin = program([*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"])
    assert run_bpf(admin, nr("personality"), (addr_no_randomize,)) == EPERM


def test_pidfd_getfd_process_madvise_and_fanotify_init() -> None:
    prog = program()
    for name in ("pidfd_getfd", "process_madvise", "fanotify_init"):
        assert run_bpf(prog, nr(name)) == EPERM, name
    ptrace = program([*DEFAULT_CAPABILITIES, "CAP_SYS_PTRACE"])
    assert run_bpf(ptrace, nr("pidfd_getfd")) == RET_ALLOW
    assert run_bpf(ptrace, nr("process_madvise")) == RET_ALLOW
    assert run_bpf(ptrace, nr("fanotify_init")) == EPERM
    admin = program([*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"])
    assert run_bpf(admin, nr("fanotify_init")) == RET_ALLOW


def test_calls_newer_than_the_profile_answer_enosys() -> None:
    newest = max(
        nr(n)
        for r in default_docker_profile()["syscalls"]
        for n in r["names"]
        if n in seccomp._NEWER_X86_64 or _known(n)
    )
    for caps in (DEFAULT_CAPABILITIES, [*DEFAULT_CAPABILITIES, *ALL_CAPS]):
        prog = program(caps)
        assert run_bpf(prog, nr("mseal")) == RET_ALLOW  # named by number (libseccomp 2.5.4)
        for number in (newest + 1, newest + 5, 1000, 0x3FFFFFFF):
            assert run_bpf(prog, number) == ENOSYS, number
        # Not named, below the newest: refused as the profile's default says.
        assert run_bpf(prog, 182) == EPERM  # putpmsg


def _known(name: str) -> bool:
    try:
        nr(name)
    except KeyError:
        return False
    return True


def test_allow_by_default_profile_has_no_enosys_range() -> None:
    prog = compile_oci(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ERRNO"}],
        },
        "x86_64",
    )
    assert prog is not None
    assert run_bpf(prog, 1000) == RET_ALLOW
    assert run_bpf(prog, nr("mount")) == EPERM


def test_no_program_for_a_machine_without_a_table() -> None:
    assert compile_oci(default_profile(DEFAULT_CAPABILITIES), "riscv64") is None


def test_containers_common_profile_compiles_and_refuses_what_it_says() -> None:
    path = "/usr/share/containers/seccomp.json"
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        pytest.skip(f"{path} absent (Debian's golang-github-containers-common)")
    profile = resolve(parse_docker_profile(text), DEFAULT_CAPABILITIES)
    prog = compile_oci(profile, "x86_64")
    assert prog is not None
    assert profile["defaultErrnoRet"] == errno.ENOSYS  # this profile answers ENOSYS
    assert run_bpf(prog, nr("read")) == RET_ALLOW
    assert run_bpf(prog, nr("mount")) == expected(profile, "mount")
    assert run_bpf(prog, nr("kexec_load")) == EPERM  # listed: EPERM
    assert run_bpf(prog, 182) == ENOSYS  # unlisted: its default, ENOSYS


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{", "Decoding seccomp profile failed"),
        ('{"defaultAction": "SCMP_ACT_NOPE"}', "defaultAction: unknown action 'SCMP_ACT_NOPE'"),
        (
            '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["opne"], "action": "SCMP_ACT_ALLOW"}]}',
            "syscalls[0].names: unknown system call 'opne'",
        ),
        (
            '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "ALLOW"}]}',
            "syscalls[0].action: unknown action 'ALLOW'",
        ),
        (
            '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}',
            "syscalls[0].args[0].index must be 0 to 5",
        ),
        (
            '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_LIKE"}]}]}',
            "syscalls[0].args[0].op: unknown operator 'SCMP_CMP_LIKE'",
        ),
    ],
)
def test_bad_profiles_are_refused_naming_the_field(text: str, words: str) -> None:
    with pytest.raises(InvalidParameter) as err:
        parse_docker_profile(text)
    assert words in str(err.value)


def test_compiled_program_is_used_only_for_its_own_profile() -> None:
    profile = default_profile(DEFAULT_CAPABILITIES)
    value = seccomp.program_annotation(profile)
    assert seccomp.program_from_annotation(profile, value) == compile_oci(profile)
    other = default_profile([])
    assert seccomp.program_from_annotation(other, value) is None  # profile changed
    assert seccomp.program_from_annotation(profile, None) is None
