"""`suppress`: contextlib.suppress without contextlib.

contextlib imports collections and functools: ~1.5 ms of every
`dockyard-runtime run` (a whole process per container), for a class this size.
"""

from __future__ import annotations


class suppress:  # noqa: N801 - named as contextlib's, a drop-in
    __slots__ = ("_kinds",)

    def __init__(self, *kinds: type[BaseException]) -> None:
        self._kinds = kinds

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, value: object, tb: object) -> bool:
        return kind is not None and issubclass(kind, self._kinds)  # type: ignore[arg-type]
