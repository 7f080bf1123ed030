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
    defaults: dict = {}
    for name in names:
        default = cls.__dict__.get(name, _MISSING)
        if default is not _MISSING:
            defaults[name] = default
            if isinstance(default, _Factory):
                delattr(cls, name)
        elif defaults:
            raise TypeError(f"{cls.__name__}.{name}: a field without a default follows one with")
    count = len(names)
    title = cls.__name__

    # One generic __init__, no generated source: compiling one per class (as
    # dataclasses does) cost more at import than every later call saves.
    def __init__(self: object, *args: object, **kwargs: object) -> None:
        if len(args) > count:
            raise TypeError(f"{title}() takes {count} positional arguments, {len(args)} given")
        values = self.__dict__
        for name, value in zip(names, args, strict=False):  # args may be fewer
            values[name] = value
        for name in names[len(args) :]:
            if name in kwargs:
                values[name] = kwargs.pop(name)
                continue
            default = defaults.get(name, _MISSING)
            if default is _MISSING:
                raise TypeError(f"{title}() missing required argument: {name!r}")
            values[name] = default.make() if isinstance(default, _Factory) else default
        if kwargs:
            name = next(iter(kwargs))
            if name in names:
                raise TypeError(f"{title}() got multiple values for argument {name!r}")
            raise TypeError(f"{title}() got an unexpected keyword argument {name!r}")

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = __init__
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
