"""The simulated enclave's measurement of files (eaa.sim.measure)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

import eaa.sim.measure as measure_mod
from eaa.errors import ConfigError
from eaa.sim import measure_files, tdx_measure


def _tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "main.py").write_bytes(b"print('hello')\n")
    (root / "sub" / "data.bin").write_bytes(bytes(range(256)))
    (root / "sub" / "empty").write_bytes(b"")
    return root


def _reference(entries: dict[str, bytes], h: hashlib._Hash) -> bytes:
    """The documented algorithm, written out independently."""
    for name in sorted(entries, key=lambda n: n.encode()):
        n = name.encode()
        h.update(len(n).to_bytes(8, "little") + n + len(entries[name]).to_bytes(8, "little") + entries[name])
    return h.digest()


def test_algorithm_matches_its_documentation(tmp_path: Path) -> None:
    app = _tree(tmp_path / "app")
    extra = tmp_path / "config.toml"
    extra.write_bytes(b"x = 1\n")
    entries = {
        "main.py": b"print('hello')\n",
        "sub/data.bin": bytes(range(256)),
        "sub/empty": b"",
        "config.toml": b"x = 1\n",
    }
    assert measure_files([app, extra]) == _reference(entries, hashlib.sha256())
    assert tdx_measure([app, extra]) == _reference(entries, hashlib.sha384())
    assert len(measure_files([app])) == 32 and len(tdx_measure([app])) == 48


def test_known_answer(tmp_path: Path) -> None:
    # Pinned so that an accidental change of the algorithm (and of every reference value) is caught.
    (tmp_path / "a.txt").write_bytes(b"A")
    # SHA-256(u64le(5) || "a.txt" || u64le(1) || "A")
    expected = "f8f3c5133984c5c73ebcd499924bf930af4a6f218a260cfb9507630ae052f0ab"
    assert measure_files([tmp_path / "a.txt"]).hex() == expected
    assert measure_files([]) == hashlib.sha256(b"").digest()
    assert tdx_measure([]) == hashlib.sha384(b"").digest()


def test_independent_of_location_argument_order_and_directory_name(tmp_path: Path) -> None:
    a = _tree(tmp_path / "build-1" / "app")
    b = tmp_path / "elsewhere" / "renamed"
    shutil.copytree(a, b)
    (tmp_path / "x").write_bytes(b"x")
    assert measure_files([a]) == measure_files([b])
    assert measure_files([a, tmp_path / "x"]) == measure_files([tmp_path / "x", b])
    assert measure_files(str(a)) == measure_files([a])  # a single path is accepted too


@pytest.mark.parametrize("victim", ["main.py", "sub/data.bin"])
@pytest.mark.parametrize("offset", [0, -1])
def test_one_byte_change_in_any_file_changes_the_measurement(tmp_path: Path, victim: str, offset: int) -> None:
    app = _tree(tmp_path / "app")
    before_sgx, before_tdx = measure_files([app]), tdx_measure([app])
    p = app / victim
    data = bytearray(p.read_bytes())
    data[offset] ^= 0x01
    p.write_bytes(bytes(data))
    assert measure_files([app]) != before_sgx
    assert tdx_measure([app]) != before_tdx


def test_names_and_empty_files_are_measured(tmp_path: Path) -> None:
    app = _tree(tmp_path / "app")
    base = measure_files([app])
    (app / "sub" / "empty").rename(app / "sub" / "empty2")
    renamed = measure_files([app])
    assert renamed != base
    (app / "new-empty").write_bytes(b"")
    assert measure_files([app]) != renamed
    # Moving bytes between name and content cannot collide (lengths are framed).
    (tmp_path / "ab").write_bytes(b"c")
    (tmp_path / "d" / "a").parent.mkdir()
    (tmp_path / "d" / "a").write_bytes(b"bc")
    assert measure_files([tmp_path / "ab"]) != measure_files([tmp_path / "d" / "a"])


def test_symlinked_file_is_measured_as_its_content(tmp_path: Path) -> None:
    app = _tree(tmp_path / "app")
    copy = tmp_path / "copy"
    shutil.copytree(app, copy)
    (copy / "main.py").unlink()
    (copy / "main.py").symlink_to(app / "main.py")
    assert measure_files([copy]) == measure_files([app])


def test_errors(tmp_path: Path) -> None:
    app = _tree(tmp_path / "app")
    with pytest.raises(ConfigError, match="No such file"):
        measure_files([tmp_path / "missing"])
    # the same name twice
    other = tmp_path / "other"
    other.mkdir()
    (other / "main.py").write_bytes(b"different")
    with pytest.raises(ConfigError, match="already measured"):
        measure_files([app, other / "main.py"])
    # a symlink to a directory inside a tree is refused, not skipped
    linked = _tree(tmp_path / "linked")
    (linked / "dirlink").symlink_to(app / "sub")
    with pytest.raises(ConfigError, match="symbolic link to a directory"):
        measure_files([linked])
    # special files
    fifo_dir = tmp_path / "fifo"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / "pipe")
    with pytest.raises(ConfigError, match="not a regular file"):
        measure_files([fifo_dir])
    with pytest.raises(ConfigError, match="neither a regular file nor a directory"):
        measure_files([fifo_dir / "pipe"])
    # a dangling symlink inside a tree
    dangling = tmp_path / "dangling"
    dangling.mkdir()
    (dangling / "gone").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="cannot measure"):
        measure_files([dangling])


def test_non_utf8_name_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    fd = os.open(os.fsencode(d) + b"/\xff.bin", os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    with pytest.raises(ConfigError, match="UTF-8"):
        measure_files([d])


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "secret"
    p.write_bytes(b"x")

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(measure_mod, "open", denied, raising=False)
    with pytest.raises(ConfigError, match="cannot measure .*Permission denied"):
        measure_files([p])


def test_file_changing_while_read_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"abc")
    real_fstat = os.fstat

    class Grown:
        def __init__(self, st: os.stat_result, delta: int) -> None:
            self.st_size = st.st_size + delta

    for delta in (1, -1):
        monkeypatch.setattr(measure_mod.os, "fstat", lambda fd, d=delta: Grown(real_fstat(fd), d))
        with pytest.raises(ConfigError, match="changed while being read"):
            measure_files([p])
