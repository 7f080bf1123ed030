"""Seccomp: Docker's default restrictions, as an OCI profile and as a BPF program.

Docker's default profile is an allow-list of ~350 system calls; this one is
its complement for the calls that matter: the ones Docker refuses to an
unprivileged container (kernel modules, kexec, mount and the new mount API,
keyrings, bpf, perf, namespaces, clock and swap changes...), each allowed
again when the capability Docker ties it to is granted. New user namespaces
are refused through clone as well (the flags argument), clone3 answers
ENOSYS so that libcs fall back to clone, and other ABIs (i386, x32) are
refused, since the numbers below are x86_64's.

`personality` is allowed only with the personas Docker allows (no
ADDR_NO_RANDOMIZE, no READ_IMPLIES_EXEC), and every system call newer than
the newest the profile names answers ENOSYS (as runc does), so a call added
to a later kernel is not open by default and libcs fall back.

`linux.seccomp` in config.json carries the profile (OCI form, so runc could
apply it too); the container init compiles it to classic BPF and installs it
just before it drops its capabilities.
"""

from __future__ import annotations

import errno
import json
import os
import struct
from functools import lru_cache

# x86_64 system call numbers (asm/unistd_64.h) of the calls the profile names.
X86_64_SYSCALLS: dict[str, int] = {
    "acct": 163, "add_key": 248, "adjtimex": 159, "bpf": 321, "clock_adjtime": 305,
    "clock_settime": 227, "clone": 56, "clone3": 435, "create_module": 174,
    "delete_module": 176, "fanotify_init": 300, "finit_module": 313, "fsconfig": 431,
    "fsmount": 432, "fsopen": 430, "fspick": 433, "get_kernel_syms": 177, "get_mempolicy": 239,
    "init_module": 175, "io_uring_enter": 426, "io_uring_register": 427,
    "io_uring_setup": 425, "ioperm": 173, "iopl": 172, "kcmp": 312,
    "kexec_file_load": 320, "kexec_load": 246, "keyctl": 250, "lookup_dcookie": 212,
    "mbind": 237, "mount": 165, "mount_setattr": 442, "move_mount": 429,
    "move_pages": 279, "name_to_handle_at": 303, "nfsservctl": 180,
    "open_by_handle_at": 304, "open_tree": 428, "perf_event_open": 298,
    "pivot_root": 155, "process_vm_readv": 310, "process_vm_writev": 311,
    "query_module": 178, "quotactl": 179, "quotactl_fd": 443, "reboot": 169,
    "request_key": 249, "set_mempolicy": 238, "setns": 308, "settimeofday": 164,
    "swapoff": 168, "swapon": 167, "syslog": 103, "sysfs": 139, "_sysctl": 156,
    "umount2": 166, "unshare": 272, "uselib": 134, "userfaultfd": 323, "ustat": 136,
    "vhangup": 153, "personality": 135, "pidfd_getfd": 438, "process_madvise": 440,
    "memfd_secret": 447, "process_mrelease": 448, "futex_waitv": 449,
    "set_mempolicy_home_node": 450,
}  # fmt: skip

# The newest system calls Docker's default profile knows (x86_64: up to 450): named
# by an ALLOW rule after the refusals, so the program's ENOSYS range starts above them.
NEWEST_KNOWN = ["memfd_secret", "process_mrelease", "futex_waitv", "set_mempolicy_home_node"]

# The personas Docker allows (PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and
# 0xffffffff, which only queries); anything else (ADDR_NO_RANDOMIZE 0x0040000,
# READ_IMPLIES_EXEC 0x0400000...) is EPERM. The kernel takes an unsigned int, so
# comparing the low 32 bits of the argument is exact.
PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF]

# Refused unless the container holds the capability (moby profiles/seccomp/default.json).
_GATED: list[tuple[str | None, list[str]]] = [
    (None, ["add_key", "keyctl", "request_key", "io_uring_setup", "io_uring_enter",
            "io_uring_register", "userfaultfd", "uselib", "ustat", "sysfs", "_sysctl",
            "nfsservctl", "get_kernel_syms", "query_module", "create_module"]),
    ("CAP_SYS_ADMIN", ["bpf", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen",
                       "fspick", "lookup_dcookie", "mount", "mount_setattr", "move_mount",
                       "open_tree", "perf_event_open", "pivot_root", "quotactl", "quotactl_fd",
                       "setns", "swapoff", "swapon", "umount2", "unshare"]),
    ("CAP_SYS_MODULE", ["delete_module", "finit_module", "init_module"]),
    ("CAP_SYS_BOOT", ["kexec_file_load", "kexec_load", "reboot"]),
    ("CAP_SYS_TIME", ["adjtimex", "clock_adjtime", "clock_settime", "settimeofday"]),
    ("CAP_SYS_PTRACE", ["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv",
                        "process_vm_writev"]),
    ("CAP_SYS_PACCT", ["acct"]),
    ("CAP_SYS_RAWIO", ["ioperm", "iopl"]),
    ("CAP_SYS_NICE", ["get_mempolicy", "mbind", "move_pages", "set_mempolicy",
                      "set_mempolicy_home_node"]),
    ("CAP_SYSLOG", ["syslog"]),
    ("CAP_SYS_TTY_CONFIG", ["vhangup"]),
    ("CAP_DAC_READ_SEARCH", ["name_to_handle_at", "open_by_handle_at"]),
]  # fmt: skip

# clone flags that create namespaces.
NAMESPACE_FLAGS = [
    0x00020000,
    0x02000000,
    0x04000000,
    0x08000000,
    0x10000000,
    0x20000000,
    0x40000000,
]

_AUDIT_ARCH = {"x86_64": 0xC000003E}
_X32_SYSCALL_BIT = 0x40000000

# classic BPF
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_AND_K = 0x54
_RET_K = 0x06
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
_SECCOMP_DATA_ARGS = 16  # offsetof(struct seccomp_data, args)


def default_profile(capabilities: list[str]) -> dict:
    """Docker's default restrictions for a container with these capabilities (OCI form)."""
    held = set(capabilities)
    denied = sorted(
        name
        for cap, names in _GATED
        if cap is None or cap not in held
        for name in names
        if name != "clone3"
    )
    rules: list[dict] = [
        {"names": denied, "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM},
    ]
    # First match wins: the allowed personas, then a refusal of every other one.
    for persona in PERSONALITIES:
        rules.append(
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": persona, "op": "SCMP_CMP_EQ"}],
            }
        )
    rules.append({"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM})
    if "CAP_SYS_ADMIN" not in held:
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS})
        for flag in NAMESPACE_FLAGS:
            rules.append(
                {
                    "names": ["clone"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": errno.EPERM,
                    "args": [
                        {"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}
                    ],
                }
            )
    rules.append({"names": NEWEST_KNOWN, "action": "SCMP_ACT_ALLOW"})
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": rules,
    }


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def _action(rule: dict) -> int:
    action = rule.get("action")
    if action == "SCMP_ACT_ALLOW":
        return RET_ALLOW
    if action == "SCMP_ACT_ERRNO":
        return RET_ERRNO | (int(rule.get("errnoRet", errno.EPERM)) & 0xFFFF)
    raise ValueError(f"unsupported seccomp action {action!r}")


def compile_profile(profile: dict, machine: str | None = None) -> bytes | None:
    """The BPF program (struct sock_filter[]) for an OCI seccomp profile.

    None if this machine has no syscall table here (the profile is then not
    applied). Supports default action ALLOW, rule actions ALLOW/ERRNO, and
    argument conditions SCMP_CMP_EQ / SCMP_CMP_MASKED_EQ on the low 32 bits.
    """
    return _compile(json.dumps(profile, sort_keys=True), machine or os.uname().machine)


@lru_cache(maxsize=16)
def _compile(profile_json: str, machine: str) -> bytes | None:
    if machine not in _AUDIT_ARCH:
        return None
    profile = json.loads(profile_json)
    if profile.get("defaultAction", "SCMP_ACT_ALLOW") != "SCMP_ACT_ALLOW":
        raise ValueError("only profiles whose default action is SCMP_ACT_ALLOW are supported")
    deny_other_abi = RET_ERRNO | errno.EPERM
    rules = profile.get("syscalls", [])
    named = [X86_64_SYSCALLS[n] for r in rules for n in r["names"] if n in X86_64_SYSCALLS]
    prog = [
        _insn(_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        _insn(_JEQ_K, 1, 0, _AUDIT_ARCH[machine]),
        _insn(_RET_K, 0, 0, deny_other_abi),
        _insn(_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        _insn(_JGE_K, 0, 1, _X32_SYSCALL_BIT),
        _insn(_RET_K, 0, 0, deny_other_abi),
    ]
    if named:  # newer than anything the profile names: ENOSYS (what runc does)
        prog += [
            _insn(_JGE_K, 0, 1, max(named) + 1),
            _insn(_RET_K, 0, 0, RET_ERRNO | errno.ENOSYS),
        ]
    for rule in rules:
        ret = _action(rule)
        args = rule.get("args") or []
        if len(args) > 1:
            raise ValueError("at most one argument condition per rule is supported")
        for name in rule["names"]:
            nr = X86_64_SYSCALLS.get(name)
            if nr is None:
                continue  # unknown here: nothing to filter
            if not args:
                prog += [_insn(_JEQ_K, 0, 1, nr), _insn(_RET_K, 0, 0, ret)]
                continue
            cond = args[0]
            index, value, op = int(cond["index"]), int(cond["value"]), cond["op"]
            if op == "SCMP_CMP_MASKED_EQ":
                mask, expected = value & 0xFFFFFFFF, int(cond.get("valueTwo", 0)) & 0xFFFFFFFF
            elif op == "SCMP_CMP_EQ":
                mask, expected = 0xFFFFFFFF, value & 0xFFFFFFFF
            else:
                raise ValueError(f"unsupported seccomp operator {op!r}")
            prog += [
                _insn(_JEQ_K, 0, 5, nr),
                _insn(_LD_W_ABS, 0, 0, _SECCOMP_DATA_ARGS + 8 * index),  # low word (little-endian)
                _insn(_AND_K, 0, 0, mask),
                _insn(_JEQ_K, 0, 1, expected),
                _insn(_RET_K, 0, 0, ret),
                _insn(_LD_W_ABS, 0, 0, 0),  # back to the syscall number
            ]
    prog.append(_insn(_RET_K, 0, 0, RET_ALLOW))
    return b"".join(prog)
