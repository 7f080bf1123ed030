"""@record: what the runtime's records keep of @dataclass (init, defaults, eq, repr,
replace, asdict), so that ContainerConfig and OciContainer behave as before."""

from __future__ import annotations

import dataclasses

import pytest

from dockyard.runtime.record import asdict, field, record, replace


@record
class Inner:
    a: int
    b: str = "x"


@record
class Outer:
    name: str
    inner: Inner
    items: list[int] = field(default_factory=list)
    count: int = 0


@dataclasses.dataclass
class DInner:
    a: int
    b: str = "x"


@dataclasses.dataclass
class DOuter:
    name: str
    inner: DInner
    items: list[int] = dataclasses.field(default_factory=list)
    count: int = 0


def test_init_defaults_and_factories_as_a_dataclass() -> None:
    one, two = Outer("n", Inner(1)), Outer(name="n", inner=Inner(a=1))
    assert one == two and one.items == [] and one.items is not two.items
    assert one.count == 0 and one.inner.b == "x"
    with pytest.raises(TypeError):
        Outer("n")  # a field without a default is required
    with pytest.raises(TypeError):
        Outer("n", Inner(1), nope=1)


def test_eq_repr_replace_asdict_match_dataclasses() -> None:
    ours = Outer("n", Inner(1, "y"), [1, 2], 3)
    theirs = DOuter("n", DInner(1, "y"), [1, 2], 3)
    assert asdict(ours) == dataclasses.asdict(theirs)
    assert repr(ours) == repr(theirs).replace("DOuter", "Outer").replace("DInner", "Inner")
    changed = replace(ours, count=4)
    assert changed.count == 4 and ours.count == 3 and changed.inner is ours.inner
    assert ours != changed and ours != theirs
    with pytest.raises(TypeError):
        replace(ours, nope=1)
    with pytest.raises(TypeError):
        hash(ours)  # mutable and compared by value, as a dataclass


def test_a_required_field_after_a_default_is_refused() -> None:
    with pytest.raises(TypeError):

        @record
        class Bad:
            a: int = 0
            b: int
