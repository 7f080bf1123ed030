"""The cgroup v2 device program, run by a small interpreter of the opcodes it
uses: its verdicts are those of v1's devices.allow/deny written in order."""

from __future__ import annotations

import struct

import pytest

from dockyard.runtime.bundle import DeviceRule
from dockyard.runtime.devicefilter import (
    ACC_MKNOD,
    ACC_READ,
    ACC_WRITE,
    DEV_BLOCK,
    DEV_CHAR,
    compile_rules,
)

R, W, M = ACC_READ, ACC_WRITE, ACC_MKNOD


def run(program: bytes, dev_type: int, major: int, minor: int, access: int) -> int:
    ctx = struct.pack("<III", (access << 16) | dev_type, major, minor)
    insns = [struct.unpack_from("<BBhi", program, i) for i in range(0, len(program), 8)]
    regs = [0] * 11
    pc = 0
    for _ in range(10_000):
        code, regs_byte, off, imm = insns[pc]
        dst, src = regs_byte & 0xF, regs_byte >> 4
        pc += 1
        if code == 0x61:  # ldxw dst, [src+off]: only the context (r1 at entry)
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == 0x54:
            regs[dst] = (regs[dst] & imm) & 0xFFFFFFFF
        elif code == 0x74:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == 0xBC:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif code == 0xB4:
            regs[dst] = imm & 0xFFFFFFFF
        elif code == 0x55:
            if regs[dst] != imm:
                pc += off
        elif code == 0x5D:
            if regs[dst] != regs[src]:
                pc += off
        elif code == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
    raise AssertionError("the program did not exit")


DOCKER_DEFAULT = [
    DeviceRule(False, "a", None, None, "rwm"),
    DeviceRule(True, "c", None, None, "m"),
    DeviceRule(True, "b", None, None, "m"),
    DeviceRule(True, "c", 1, 3, "rwm"),
    DeviceRule(True, "c", 1, 5, "rwm"),
    DeviceRule(True, "c", 136, None, "rwm"),
    DeviceRule(True, "c", 10, 200, "rw"),
]


@pytest.mark.parametrize(
    ("dev", "access", "allowed"),
    [
        ((DEV_CHAR, 1, 3), R | W, True),  # /dev/null
        ((DEV_CHAR, 1, 5), R, True),  # /dev/zero
        ((DEV_CHAR, 136, 7), R | W, True),  # a pty, any minor
        ((DEV_CHAR, 10, 200), R | W, True),  # /dev/net/tun, rw
        ((DEV_CHAR, 10, 200), M, True),  # "c *:* m": any char device may be made
        ((DEV_BLOCK, 8, 0), R, False),  # a host disk: no reading
        ((DEV_BLOCK, 8, 0), M, True),  # mknod is allowed, opening it is not
        ((DEV_CHAR, 1, 1), R, False),  # /dev/mem
        ((DEV_CHAR, 4, 1), R | W, False),  # a host tty
    ],
)
def test_verdicts_match_v1_rules_in_order(dev, access, allowed) -> None:
    assert run(compile_rules(DOCKER_DEFAULT), *dev, access) == int(allowed)


def test_a_later_rule_overrides_an_earlier_one() -> None:
    rules = [DeviceRule(True, "a", None, None, "rwm"), DeviceRule(False, "c", 1, 1, "rwm")]
    program = compile_rules(rules)
    assert run(program, DEV_CHAR, 1, 1, R) == 0
    assert run(program, DEV_CHAR, 1, 3, R) == 1
    assert run(program, DEV_BLOCK, 8, 0, R | W) == 1


def test_no_rules_deny_everything_and_bad_rules_are_refused() -> None:
    assert run(compile_rules([]), DEV_CHAR, 1, 3, R) == 0
    with pytest.raises(ValueError, match="access"):
        compile_rules([DeviceRule(True, "c", 1, 3, "rwx")])
    with pytest.raises(ValueError, match="type"):
        compile_rules([DeviceRule(True, "p", 1, 3, "r")])
