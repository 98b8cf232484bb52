"""@record behaves as @dataclass(frozen=True) does: equality, hashing, repr, immutability and the
dataclasses functions, with the options records use."""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Iterator, Mapping

import pytest

from eaa.records import record


def _pair(slots: bool = False) -> tuple[type, type]:
    """The same class as a record and as the frozen dataclass it stands for."""

    def body() -> dict[str, object]:
        return {"__annotations__": {"a": "int", "b": "bytes", "c": "list[int]", "d": "str"},
                "b": b"", "c": dataclasses.field(default_factory=list, compare=False),
                "d": dataclasses.field(default="x", repr=False), "__doc__": "A test record."}

    rec = record(slots=slots)(type("Thing", (), body()))
    ref = dataclasses.dataclass(frozen=True, slots=slots)(type("Thing", (), body()))
    return rec, ref


@pytest.mark.parametrize("slots", [False, True])
def test_equality_hash_and_repr_are_the_dataclass_ones(slots: bool) -> None:
    rec, ref = _pair(slots)
    for args in [(1,), (1, b"x"), (2, b"x", [3])]:
        assert repr(rec(*args)) == repr(ref(*args))
    assert rec(1, b"x", [1]) == rec(1, b"x", [2])  # c is compare=False
    assert rec(1, b"x") != rec(2, b"x") and rec(1, b"x") != rec(1, b"y")
    assert rec(1, b"x", d="p") != rec(1, b"x", d="q")  # repr=False still compares
    assert hash(rec(1, b"x", [1])) == hash(rec(1, b"x", [9])) == hash(ref(1, b"x", [0]))
    assert hash(rec(1, b"x")) != hash(rec(2, b"x"))
    assert rec(1) != ref(1) and (rec(1) == (1, b"", "x")) is False  # only the same class is equal
    assert rec(1).__eq__(ref(1)) is NotImplemented


@pytest.mark.parametrize("slots", [False, True])
def test_frozen_and_a_dataclass(slots: bool) -> None:
    rec, _ = _pair(slots)
    r = rec(1, b"x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.a = 2  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del r.a  # type: ignore[attr-defined]
    assert dataclasses.is_dataclass(r)
    assert [f.name for f in dataclasses.fields(r)] == ["a", "b", "c", "d"]
    assert dataclasses.replace(r, a=5) == rec(5, b"x")
    assert dataclasses.asdict(r) == {"a": 1, "b": b"x", "c": [], "d": "x"}
    assert rec.__doc__ == "A test record."
    assert hasattr(r, "__dict__") is not slots


@record
class Picklable:
    """Module level, where pickle finds it."""

    a: int
    b: tuple[int, ...] = ()


@record(slots=True)
class PicklableSlots:
    """The same with slots."""

    a: int
    b: tuple[int, ...] = ()


@pytest.mark.parametrize("cls", [Picklable, PicklableSlots])
def test_pickles(cls: type) -> None:
    r = cls(1, (2, 3))
    assert pickle.loads(pickle.dumps(r)) == r


def test_a_subclass_instance_is_not_equal() -> None:
    @record
    class Base:
        """Base."""

        x: int

    @record
    class Derived(Base):
        """Derived."""

        y: int = 0

    assert Base(1) != Derived(1) and Derived(1, 2) == Derived(1, 2) and Derived(1, 2) != Derived(1, 3)
    assert repr(Derived(1, 2)) == "test_a_subclass_instance_is_not_equal.<locals>.Derived(x=1, y=2)"


def test_hash_false_and_no_fields() -> None:
    @record
    class H:
        """Hash skips b."""

        a: int
        b: int = dataclasses.field(default=0, hash=False)

    @record
    class Empty:
        """No fields."""

    assert H(1, 2) != H(1, 3) and hash(H(1, 2)) == hash(H(1, 3))
    assert Empty() == Empty() and hash(Empty()) == hash(()) and repr(Empty()).endswith("Empty()")


def test_methods_of_the_class_itself_are_kept() -> None:
    @record
    class Own:
        """Defines its own repr and equality."""

        a: int

        def __repr__(self) -> str:
            return "own"

        def __eq__(self, other: object) -> bool:
            return True

    @record
    class OwnHash:
        """Defines its own hash."""

        a: int

        def __hash__(self) -> int:
            return 7

    reference = dataclasses.dataclass(frozen=True)(type("R", (), {
        "__annotations__": {"a": "int"}, "__eq__": lambda s, o: True, "__doc__": "d"}))
    assert repr(Own(1)) == "own" and Own(1) == Own(2) and Own(1) == 3
    assert hash(Own(1)) == hash(reference(1)) and hash(Own(2)) == hash(reference(2))  # hashed over its fields
    assert hash(OwnHash(1)) == 7 and OwnHash(1) == OwnHash(1) and OwnHash(1) != OwnHash(2)


def test_eq_false_keeps_the_inherited_equality() -> None:
    @record(slots=True, eq=False)
    class Items(Mapping[str, int]):
        """A mapping's equality: equal to a dict of the same items."""

        values: tuple[tuple[str, int], ...]

        def __getitem__(self, key: str) -> int:
            return dict(self.values)[key]

        def __iter__(self) -> Iterator[str]:
            return iter(dict(self.values))

        def __len__(self) -> int:
            return len(self.values)

    assert Items((("a", 1),)) == {"a": 1} and Items((("a", 1),)) != {"a": 2}
    assert repr(Items((("a", 1),))).endswith("Items(values=(('a', 1),))")


def test_every_frozen_dataclass_of_the_package_is_a_record() -> None:
    """A frozen record defined with plain @dataclass would bring back the per-class compilation start-up pays."""
    import importlib
    import pkgutil

    import eaa

    skip = ("eaa.services.pccs", "eaa.cli.pccs_server")  # the optional [pccs] extra may be absent
    plain = []
    for info in pkgutil.walk_packages(eaa.__path__, "eaa."):
        if info.name.startswith(skip):
            continue
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (isinstance(obj, type) and obj.__module__ == info.name and dataclasses.is_dataclass(obj)
                    and obj.__dataclass_params__.frozen and "__record_repr__" not in vars(obj)):  # type: ignore[attr-defined]
                plain.append(f"{info.name}.{obj.__qualname__}")
    assert plain == []


def _run(code: str) -> str:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_dataclasses_is_imported_without_inspect_which_loads_on_first_use() -> None:
    """eaa._dataclasses: the package imports dataclasses first, with a stand-in for inspect that forwards."""
    out = _run(
        "import sys\n"
        "import eaa.records, dataclasses\n"
        "print('inspect' in sys.modules)\n"
        "@eaa.records.record\n"
        "class Undocumented:\n"
        "    a: int\n"
        "print(Undocumented.__doc__)\n"  # dataclasses wrote it with inspect.signature, through the stand-in
        "import inspect\n"
        "print(sys.modules['inspect'] is inspect, inspect.__file__ is not None, hasattr(inspect, 'getsource'))\n"
        "print(dataclasses.inspect.signature is inspect.signature)\n"
    )
    assert out.splitlines() == ["False", "Undocumented(a: int)", "True True True", "True"]


def test_an_inspect_or_dataclasses_already_loaded_is_left_alone() -> None:
    out = _run("import inspect, sys\nimport eaa.records, dataclasses\nprint(dataclasses.inspect is inspect)\n")
    assert out == "True"
    out = _run("import dataclasses, sys\nimport eaa.records\nprint(eaa.records.dataclasses is dataclasses,"
               " type(sys.modules['inspect']).__name__)\n")
    assert out == "True module"
