"""The C library's entry points that `os` lacks, bound through `_ctypes` alone.

`ctypes` (its Python half: ~40 types built at import, struct, ctypes._endian)
costs ~1.5 ms of every `dockyard-runtime run`, a whole process per container;
the few calls the kernel layer makes need only the C extension under it.
Kernel structures are built as bytes (int.to_bytes) and passed by address;
what the kernel writes back goes into a `buffer`.

Only kernel/ imports this (DESIGN.md: every system call goes through kernel/).
"""

from __future__ import annotations

import sys
from _ctypes import (
    FUNCFLAG_CDECL,
    FUNCFLAG_USE_ERRNO,
    RTLD_LOCAL,
    CFuncPtr,
    _SimpleCData,
    addressof,
    dlopen,
    get_errno,
)

__all__ = ["buffer", "cbytes", "get_errno", "pointer", "u32", "u64", "uint"]

_RTLD_NOW = 2


class c_int(_SimpleCData):  # noqa: N801 - named as ctypes names its types
    _type_ = "i"


class c_uint(_SimpleCData):  # noqa: N801
    _type_ = "I"


class c_long(_SimpleCData):  # noqa: N801
    _type_ = "l"


class c_ulong(_SimpleCData):  # noqa: N801
    _type_ = "L"


class c_char_p(_SimpleCData):  # noqa: N801
    _type_ = "z"


class c_char(_SimpleCData):  # noqa: N801
    _type_ = "c"


class _Libc:
    """What CFuncPtr((name, library)) reads: the dlopen handle of the process itself."""

    _handle = dlopen(None, RTLD_LOCAL | _RTLD_NOW)


class _Function(CFuncPtr):
    # As ctypes.CDLL(None, use_errno=True): cdecl, errno kept for get_errno().
    _flags_ = FUNCFLAG_CDECL | FUNCFLAG_USE_ERRNO
    _restype_ = c_int


def _function(name: str, argtypes: list | None = None, restype: type | None = None) -> CFuncPtr:
    fn = _Function((name, _Libc))
    if argtypes is not None:
        fn.argtypes = argtypes
    if restype is not None:
        fn.restype = restype
    return fn


# Arguments without argtypes go as ctypes converts them: int as C int, bytes as
# char *, None as NULL (what the callers pass; pointers are given as c_ulong).
mount = _function("mount", [c_char_p, c_char_p, c_char_p, c_ulong, c_char_p])
umount2 = _function("umount2", [c_char_p, c_int])
unshare = _function("unshare", [c_int])
setns = _function("setns", [c_int, c_int])
syncfs = _function("syncfs", [c_int])
sethostname = _function("sethostname", [c_char_p, c_ulong])
setdomainname = _function("setdomainname", [c_char_p, c_ulong])
prctl = _function("prctl", [c_int, c_ulong, c_ulong, c_ulong, c_ulong])
ioctl = _function("ioctl", [c_int, c_ulong])  # then an int or a pointer (variadic)
setrlimit = _function("setrlimit")
syscall = _function("syscall", restype=c_long)
socket = _function("socket", [c_int, c_int, c_int])

_ORDER = sys.byteorder


def buffer(init: bytes | int) -> bytearray:
    """Writable memory for the kernel: `init`'s bytes, or that many zero bytes. Pass
    pointer(buf); keep `buf` referenced, and its size as is, until the call returns.
    A bytearray rather than a ctypes array: each new array length is a new ctypes
    type, ~10 us to make, in the forked init where every such cost is start time."""
    return bytearray(init)


def pointer(buf: bytearray) -> c_ulong:
    """The address of a buffer's memory, as an argument."""
    return c_ulong(addressof(c_char.from_buffer(buf)))


def cbytes(value: int, size: int) -> bytes:
    """An unsigned C integer of `size` bytes in this machine's byte order."""
    return value.to_bytes(size, _ORDER)


def u32(data: bytes, offset: int = 0) -> int:
    return int.from_bytes(data[offset : offset + 4], _ORDER)


def u64(data: bytes, offset: int = 0) -> int:
    return int.from_bytes(data[offset : offset + 8], _ORDER)


def uint(value: int) -> c_uint:
    """An unsigned int argument (a plain int goes as a signed one)."""
    return c_uint(value)
