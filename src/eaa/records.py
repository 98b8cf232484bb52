"""``@record``: a frozen dataclass whose ``__repr__``, ``__eq__`` and ``__hash__`` are shared functions.

Python 3.11's dataclasses compiles each method it generates with ``exec`` when the class is created,
and a frozen dataclass gets six of them. Every one-shot command pays that for each record it imports
(``eaa verify-quote`` defines 18, ``shelter remoteattestation`` 45): after cryptography's own imports, it
was their largest start-up cost. A record still gets a generated ``__init__`` and the frozen
``__setattr__``/``__delattr__``, is a dataclass to ``dataclasses.fields``, ``replace`` and ``asdict``,
and compares, hashes and prints as the generated methods would: over the fields with ``compare=True``
(hash: ``hash=True``, or ``compare`` when ``hash`` is unset), between instances of exactly the same
class, printing the fields with ``repr=True``. Methods the class defines itself are kept, as dataclasses
keeps them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform, overload

_T = TypeVar("_T", bound=type)


def _getter(names: list[str]) -> Callable[[Any], Any]:
    if len(names) == 1:
        get = attrgetter(names[0])
        return lambda obj: (get(obj),)
    return attrgetter(*names) if names else lambda obj: ()


def _repr(self: Any) -> str:
    cls = type(self)
    return f"{cls.__qualname__}({', '.join(f'{n}={getattr(self, n)!r}' for n in cls.__record_repr__)})"


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    key = self.__class__.__record_compare__
    return key(self) == key(other)


def _hash(self: Any) -> int:
    return hash(self.__class__.__record_hash__(self))


def _make(cls: _T, slots: bool, eq: bool) -> _T:
    own = dict(cls.__dict__)  # what the class body defined, before dataclasses adds to it
    made: Any = dataclasses.dataclass(cls, frozen=True, slots=slots, repr=False, eq=False)
    fields = dataclasses.fields(made)
    if "__repr__" not in own:
        made.__record_repr__ = tuple(f.name for f in fields if f.repr)
        made.__repr__ = _repr
    if eq:
        if "__eq__" not in own:
            made.__record_compare__ = _getter([f.name for f in fields if f.compare])
            made.__eq__ = _eq
        # As dataclasses decides for frozen=True, eq=True: a __hash__ of the class's own is kept, and the
        # None that defining __eq__ implies is not one.
        class_hash = own.get("__hash__", dataclasses.MISSING)
        if class_hash is dataclasses.MISSING or (class_hash is None and "__eq__" in own):
            names = [f.name for f in fields if (f.compare if f.hash is None else f.hash)]
            made.__record_hash__ = _getter(names)
            made.__hash__ = _hash
    return made  # type: ignore[no-any-return]


@overload
def record(cls: _T, /) -> _T: ...


@overload
def record(*, slots: bool = False, eq: bool = True) -> Callable[[_T], _T]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def record(cls: Any = None, /, *, slots: bool = False, eq: bool = True) -> Any:
    """``@record`` or ``@record(slots=True)``; ``eq=False`` keeps the equality the class inherits."""
    if cls is None:
        return lambda c: _make(c, slots, eq)
    return _make(cls, slots, eq)


__all__ = ["record"]
