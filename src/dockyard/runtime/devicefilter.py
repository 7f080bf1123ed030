"""Device rules as a cgroup v2 eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE).

v1 has the devices controller (devices.allow/deny); v2 has none: the kernel
asks a BPF program attached to the cgroup about every device open and mknod.
This compiles the OCI rules the way runc's devicefilter does: the rules are
tried last to first (a later rule overrides an earlier one, as writing them
in order to v1's files would), the first that matches decides, and a device
no rule matches is denied.

The program reads struct bpf_cgroup_dev_ctx {u32 access_type; u32 major;
u32 minor}, where access_type is (access << 16) | type.
"""

from __future__ import annotations

import struct

from dockyard.runtime.bundle import DeviceRule

# BPF_DEVCG_DEV_* and BPF_DEVCG_ACC_* (include/uapi/linux/bpf.h)
DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
_TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}
_ACCESS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
ALL_ACCESS = ACC_MKNOD | ACC_READ | ACC_WRITE

# Opcodes used (classic eBPF encodings).
LDX_W_MEM = 0x61
ALU32_AND_K = 0x54
ALU32_RSH_K = 0x74
ALU32_MOV_X = 0xBC
ALU32_MOV_K = 0xB4
JNE_K = 0x55
JNE_X = 0x5D
EXIT = 0x95

R0, R1, R2, R3, R4, R5 = range(6)
_INSN = struct.Struct("<BBhi")


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> tuple:
    return (code, dst, src, off, imm)


def access_bits(access: str) -> int:
    bits = 0
    for ch in access:
        if ch not in _ACCESS:
            raise ValueError(f"device access {access!r}: only r, w and m")
        bits |= _ACCESS[ch]
    return bits


def compile_rules(rules: list[DeviceRule]) -> bytes:
    """The program's instructions, 8 bytes each, ready for BPF_PROG_LOAD."""
    prog: list[tuple] = [
        _insn(LDX_W_MEM, R2, R1, 0),  # r2 = access_type & 0xffff: the device type
        _insn(ALU32_AND_K, R2, imm=0xFFFF),
        _insn(LDX_W_MEM, R3, R1, 0),  # r3 = access_type >> 16: the access asked for
        _insn(ALU32_RSH_K, R3, imm=16),
        _insn(LDX_W_MEM, R4, R1, 4),  # r4 = major
        _insn(LDX_W_MEM, R5, R1, 8),  # r5 = minor
    ]
    for rule in reversed(rules):
        checks: list[tuple] = []
        if rule.kind != "a":
            if rule.kind not in _TYPES:
                raise ValueError(f"device type {rule.kind!r}: only a, b and c")
            checks.append(("jne_k", R2, _TYPES[rule.kind]))
        bits = ALL_ACCESS if rule.kind == "a" else access_bits(rule.access or "rwm")
        if bits != ALL_ACCESS:
            checks.append(("access", bits))
        if rule.kind != "a" and rule.major is not None and rule.major >= 0:
            checks.append(("jne_k", R4, rule.major))
        if rule.kind != "a" and rule.minor is not None and rule.minor >= 0:
            checks.append(("jne_k", R5, rule.minor))
        block: list[tuple] = []
        for check in checks:
            if check[0] == "access":
                # Matches when the access asked for is within the rule's: (r3 & bits) == r3.
                block += [
                    _insn(ALU32_MOV_X, R1, R3),
                    _insn(ALU32_AND_K, R1, imm=check[1]),
                    ("jne_x_next", R1, R3),
                ]
            else:
                block.append(("jne_k_next", check[1], check[2]))
        block += [_insn(ALU32_MOV_K, R0, imm=1 if rule.allow else 0), _insn(EXIT)]
        # Every jump goes to the end of this block (the next rule).
        end = len(block)
        for i, ins in enumerate(block):
            if ins[0] == "jne_k_next":
                block[i] = _insn(JNE_K, ins[1], off=end - i - 1, imm=ins[2])
            elif ins[0] == "jne_x_next":
                block[i] = _insn(JNE_X, ins[1], ins[2], off=end - i - 1)
        prog += block
        if not checks:
            # It matches every device: what follows is unreachable, and the
            # verifier refuses a program with unreachable instructions.
            return _encode(prog)
    prog += [_insn(ALU32_MOV_K, R0, imm=0), _insn(EXIT)]  # no rule matched: denied
    return _encode(prog)


def _encode(prog: list[tuple]) -> bytes:
    return b"".join(_INSN.pack(c, dst | (src << 4), off, imm) for c, dst, src, off, imm in prog)
