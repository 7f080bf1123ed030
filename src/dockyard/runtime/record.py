"""`@record`: the part of `@dataclass` the runtime's records use, without its import.

`dockyard-runtime run` is a whole process per container (containerd's shim
spawns it as it spawns runc): importing `dataclasses` pulls in `inspect`,
`ast`, `dis` and `tokenize` (~7 ms, a third of what `run` imported), and
each `@dataclass` class costs more to build. A record gets the same
`__init__` (fields in annotation order, defaults, `field(default_factory=)`),
`__eq__` and `__repr__`; `replace` and `asdict` stand in for dataclasses'.
"""

from __future__ import annotations

_MISSING = object()


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: object) -> None:
        self.make = make


def field(*, default_factory: object) -> object:
    """A default made per instance (`field(default_factory=list)`), as in dataclasses."""
    return _Factory(default_factory)


def record(cls: type) -> type:
    names = tuple(cls.__dict__.get("__annotations__", {}))
    ns: dict = {"_MISSING": _MISSING}
    params: list[str] = []
    body: list[str] = []
    for name in names:
        default = cls.__dict__.get(name, _MISSING)
        if isinstance(default, _Factory):
            ns[f"_f_{name}"] = default.make
            params.append(f"{name}=_MISSING")
            body.append(f" self.{name} = _f_{name}() if {name} is _MISSING else {name}")
            delattr(cls, name)
            continue
        if default is _MISSING:
            if any("=" in p for p in params):
                raise TypeError(
                    f"{cls.__name__}.{name}: a field without a default follows one with"
                )
            params.append(name)
        else:
            ns[f"_d_{name}"] = default
            params.append(f"{name}=_d_{name}")
        body.append(f" self.{name} = {name}")
    source = f"def __init__(self, {', '.join(params)}):\n" + ("\n".join(body) or " pass")
    exec(source, ns)  # noqa: S102 - our own field names, as dataclasses does
    init = ns["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init
    cls.__record_fields__ = names
    cls.__eq__ = _eq
    cls.__hash__ = None  # mutable, compared by value: unhashable, as a dataclass
    cls.__repr__ = _repr
    return cls


def _eq(self: object, other: object) -> bool:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return all(getattr(self, n) == getattr(other, n) for n in self.__record_fields__)


def _repr(self: object) -> str:
    inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__record_fields__)
    return f"{self.__class__.__qualname__}({inner})"


def replace(obj: object, **changes: object) -> object:
    """A copy with some fields changed (dataclasses.replace)."""
    fields = obj.__record_fields__
    for name in changes:
        if name not in fields:
            raise TypeError(f"{obj.__class__.__name__} has no field {name!r}")
    values = {n: getattr(obj, n) for n in fields}
    values.update(changes)
    return obj.__class__(**values)


def asdict(obj: object) -> object:
    """Records as dicts, all the way down (dataclasses.asdict)."""
    fields = getattr(obj.__class__, "__record_fields__", None)
    if fields is not None:
        return {n: asdict(getattr(obj, n)) for n in fields}
    if isinstance(obj, list | tuple):
        return type(obj)(asdict(v) for v in obj)
    if isinstance(obj, dict):
        return {k: asdict(v) for k, v in obj.items()}
    return obj
