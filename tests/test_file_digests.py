"""Digests of declared files: patterns, links, the stat index and its racy guard,
threads off the loop, and the index kept in SQLite."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from flow2._store import _files
from flow2._store._files import MISSING, FileIndex


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def age(path: Path, seconds: float = 3600) -> None:
    """Put a file's modification time in the past, as a file not edited lately has."""
    past = time.time_ns() - int(seconds * 1e9)
    os.utime(path, ns=(past, past))


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files the index opens, counted where it opens them."""
    paths: list[str] = []

    def counting_open(path: str, *args: Any, **kwargs: Any) -> Any:
        paths.append(os.path.basename(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(_files, "open", counting_open, raising=False)
    return paths


def test_a_file_a_glob_and_a_directory(tmp_path: Path) -> None:
    write(tmp_path / "src/app.py", "app")
    write(tmp_path / "src/pkg/util.py", "util")
    write(tmp_path / "src/pkg/.hidden.py", "hidden")
    write(tmp_path / "src/pkg/data.json", "{}")
    write(tmp_path / "README.md", "readme")
    write(tmp_path / "a1.txt", "1")
    write(tmp_path / "b2.txt", "2")
    index = FileIndex()
    assert index.digests(["README.md"], tmp_path) == {"README.md": sha256(b"readme")}
    assert set(index.digests(["src/**/*.py"], tmp_path)) == {
        "src/app.py",
        "src/pkg/util.py",
        "src/pkg/.hidden.py",
    }
    assert set(index.digests(["src/*.py"], tmp_path)) == {"src/app.py"}
    assert set(index.digests(["src/*"], tmp_path)) == {  # a folder matched: all of it
        "src/app.py",
        "src/pkg/util.py",
        "src/pkg/.hidden.py",
        "src/pkg/data.json",
    }
    assert set(index.digests(["src/*/*.py"], tmp_path)) == {"src/pkg/util.py", "src/pkg/.hidden.py"}
    assert set(index.digests(["src"], tmp_path)) == {
        "src/app.py",
        "src/pkg/util.py",
        "src/pkg/.hidden.py",
        "src/pkg/data.json",
    }
    assert set(index.digests(["[ab]?.txt"], tmp_path)) == {"a1.txt", "b2.txt"}
    assert set(index.digests(["[!a]*.txt"], tmp_path)) == {"b2.txt"}
    assert set(index.digests(["./src/../README.md"], tmp_path)) == {"README.md"}
    both = index.digests(["src/**", "README.md"], tmp_path)
    assert list(both) == sorted(both) and len(both) == 5


def test_patterns_that_match_nothing_are_missing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    write(tmp_path / "here.txt", "x")
    found = FileIndex().digests(["absent.txt", "src/*.py", "empty", "here.txt"], tmp_path)
    assert found == {
        "absent.txt": MISSING,
        "src/*.py": MISSING,
        "empty": MISSING,
        "here.txt": sha256(b"x"),
    }


def test_a_pattern_leaving_the_base_is_shown_as_given(tmp_path: Path) -> None:
    base = tmp_path / "project"
    base.mkdir()
    write(tmp_path / "shared/config.yml", "c")
    write(tmp_path / "shared/more/extra.yml", "e")
    index = FileIndex()
    assert index.digests(["../shared/config.yml"], base) == {"../shared/config.yml": sha256(b"c")}
    assert set(index.digests(["../shared"], base)) == {
        "../shared/config.yml",
        "../shared/more/extra.yml",
    }
    assert set(index.digests(["../shared/**/*.yml"], base)) == {
        "../shared/config.yml",
        "../shared/more/extra.yml",
    }


def test_links_are_followed_once_and_loops_end(tmp_path: Path) -> None:
    write(tmp_path / "data/real.txt", "real")
    (tmp_path / "data/alias.txt").symlink_to(tmp_path / "data/real.txt")
    (tmp_path / "data/loop").symlink_to(tmp_path / "data")
    (tmp_path / "data/gone.txt").symlink_to(tmp_path / "nowhere.txt")
    (tmp_path / "outside").mkdir()
    write(tmp_path / "outside/far.txt", "far")
    (tmp_path / "data/far").symlink_to(tmp_path / "outside")
    (tmp_path / "data/also_far").symlink_to(tmp_path / "outside")  # a second link
    (tmp_path / "data/a_link").symlink_to(tmp_path / "data/z_real")  # before the real one
    write(tmp_path / "data/z_real/inner.txt", "inner")
    found = FileIndex().digests(["data"], tmp_path)
    assert found["data/real.txt"] == found["data/alias.txt"] == sha256(b"real")
    assert found["data/gone.txt"] == MISSING
    assert found["data/also_far/far.txt"] == sha256(b"far")  # the first link in name order
    assert found["data/loop"].startswith("link:")
    assert found["data/a_link"].startswith("link:")
    assert found["data/z_real/inner.txt"] == sha256(b"inner")
    assert set(found) == {
        "data/real.txt",
        "data/alias.txt",
        "data/gone.txt",
        "data/also_far/far.txt",
        "data/far",
        "data/loop",
        "data/a_link",
        "data/z_real/inner.txt",
    }
    retargeted = tmp_path / "data/loop"
    retargeted.unlink()
    os.symlink("../data", retargeted)
    assert FileIndex().digests(["data"], tmp_path)["data/loop"] != found["data/loop"]


def test_a_large_file_is_hashed_in_blocks(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 17)
    write(tmp_path / "big.bin", data)
    assert FileIndex().digests(["big.bin"], tmp_path) == {"big.bin": sha256(data)}


def test_unchanged_files_are_not_read_again(tmp_path: Path, opened: list[str]) -> None:
    for number in range(5):
        age(write(tmp_path / f"src/{number}.txt", str(number)))
    index = FileIndex(racy_margin=0)
    first = index.digests(["src"], tmp_path)
    assert len(opened) == 5 and index.reads == 5
    opened.clear()
    assert index.digests(["src"], tmp_path) == first
    assert opened == [] and index.reads == 5
    write(tmp_path / "src/3.txt", "three")
    again = index.digests(["src"], tmp_path)
    assert opened == ["3.txt"] and again["src/3.txt"] == sha256(b"three")


def test_an_edit_with_the_mtime_put_back_and_the_same_size_is_seen(tmp_path: Path) -> None:
    path = write(tmp_path / "config.txt", "mode=a")
    age(path)
    before = os.stat(path)
    index = FileIndex(racy_margin=0)  # only the stat decides here, not the racy guard
    assert index.digests(["config.txt"], tmp_path) == {"config.txt": sha256(b"mode=a")}
    path.write_text("mode=b")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    # The change time moves with the edit; put the mtime back until it has ticked.
    while os.stat(path).st_ctime_ns == before.st_ctime_ns:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)
    assert index.digests(["config.txt"], tmp_path) == {"config.txt": sha256(b"mode=b")}


def test_an_edit_within_the_same_timestamp_is_caught_by_the_racy_guard(
    tmp_path: Path, opened: list[str]
) -> None:
    # End to end with the default margin: an edit right after a read is seen,
    # whether its change time ticked (the stat) or not (the racy guard, which
    # test_a_racy_entry_is_read_until_its_file_is_older_than_its_digest pins).
    path = write(tmp_path / "config.txt", "mode=a")
    index = FileIndex()
    index.digests(["config.txt"], tmp_path)
    status = os.stat(path)
    path.write_text("mode=b")
    # The same stat as when it was read, as when both writes fall in one tick.
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert index.digests(["config.txt"], tmp_path) == {"config.txt": sha256(b"mode=b")}
    assert len(opened) == 2


def test_a_racy_entry_is_read_until_its_file_is_older_than_its_digest(
    tmp_path: Path, opened: list[str]
) -> None:
    path = write(tmp_path / "fresh.txt", "x")
    future = time.time_ns() + 3600 * 10**9  # modified "after" every digest taken now
    os.utime(path, ns=(future, future))
    index = FileIndex(racy_margin=0)
    index.digests(["fresh.txt"], tmp_path)
    index.digests(["fresh.txt"], tmp_path)
    assert len(opened) == 2
    age(path)
    index.digests(["fresh.txt"], tmp_path)
    index.digests(["fresh.txt"], tmp_path)
    assert len(opened) == 3


class EditedWhileRead:
    """A file edited (same size, new mtime) right after its first block was read,
    as doit's #119 has an input edited while its task runs."""

    def __init__(self, path: str, *args: Any, **kwargs: Any) -> None:
        self.path = path
        self.file = open(path, *args, **kwargs)
        self.edited = False

    def __enter__(self) -> EditedWhileRead:
        return self

    def __exit__(self, *exception: object) -> None:
        self.file.close()

    def fileno(self) -> int:
        return int(self.file.fileno())

    def readinto(self, buffer: Any) -> int:
        size = int(self.file.readinto(buffer))
        if not self.edited:
            self.edited = True
            Path(self.path).write_text("two")
            moment = time.time_ns() - 1800 * 10**9
            os.utime(self.path, ns=(moment, moment))
        return size


def test_a_file_edited_while_read_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "moving.txt", "one")
    age(path)
    opens: list[str] = []

    def open_edited_once(name: str, *args: Any, **kwargs: Any) -> Any:
        opens.append(name)
        if len(opens) == 1:
            return EditedWhileRead(name, *args, **kwargs)
        return open(name, *args, **kwargs)

    monkeypatch.setattr(_files, "open", open_edited_once, raising=False)
    index = FileIndex(racy_margin=0)
    assert index.digests(["moving.txt"], tmp_path) == {"moving.txt": sha256(b"one")}
    assert index.digests(["moving.txt"], tmp_path) == {"moving.txt": sha256(b"two")}
    assert index.digests(["moving.txt"], tmp_path) == {"moving.txt": sha256(b"two")}
    assert len(opens) == 2


def test_the_index_is_kept_in_sqlite(tmp_path: Path, opened: list[str]) -> None:
    for name in ("a.txt", "b.txt", "c.txt"):
        age(write(tmp_path / "src" / name, name))
    database = tmp_path / "index.sqlite3"
    with sqlite3.connect(database) as connection:
        assert len(FileIndex.load(connection)) == 0
        index = FileIndex(racy_margin=0)
        named = ["src/a.txt", "src/b.txt", "src/c.txt"]
        first = index.digests(named, tmp_path)
        index.save(connection)
    connection.close()
    opened.clear()
    (tmp_path / "src/c.txt").unlink()
    connection = sqlite3.connect(database, isolation_level=None)  # autocommit: still one save
    loaded = FileIndex.load(connection, racy_margin=0)
    assert len(loaded) == 3
    found = loaded.digests(named, tmp_path)
    assert opened == [] and found == {**first, "src/c.txt": MISSING}
    loaded.save(connection)
    assert not connection.in_transaction
    rows = connection.execute("SELECT path FROM file_index ORDER BY path").fetchall()
    assert [os.path.basename(row[0]) for row in rows] == ["a.txt", "b.txt"]
    connection.close()


def test_saving_inside_a_transaction_leaves_it_to_the_caller(tmp_path: Path) -> None:
    age(write(tmp_path / "a.txt", "a"))
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE other (x)")
    connection.execute("INSERT INTO other VALUES (1)")
    assert connection.in_transaction
    index = FileIndex()
    index.digests(["a.txt"], tmp_path)
    index.save(connection)
    assert connection.in_transaction
    connection.rollback()
    assert len(FileIndex.load(connection)) == 0
    connection.close()


def test_digests_async_reads_in_threads_and_agrees(tmp_path: Path) -> None:
    for number in range(20):
        age(write(tmp_path / f"src/{number}.txt", os.urandom(1000)))
    index = FileIndex(racy_margin=0)
    loop_thread: list[int] = []
    reader_threads: set[int] = set()
    real_read = _files._read

    def read(path: str) -> Any:
        import threading

        reader_threads.add(threading.get_ident())
        return real_read(path)

    async def main() -> dict[str, str]:
        import threading

        loop_thread.append(threading.get_ident())
        return await index.digests_async(["src"], tmp_path)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_files, "_read", read)
        found = asyncio.run(main())
    assert found == FileIndex().digests(["src"], tmp_path)
    assert reader_threads and loop_thread[0] not in reader_threads
    assert index.reads == 20
    asyncio.run(index.digests_async(["src"], tmp_path))
    assert index.reads == 20


def test_special_files_and_odd_globs(tmp_path: Path) -> None:
    write(tmp_path / "data/plain.txt", "x")
    os.mkfifo(tmp_path / "data/pipe")
    write(tmp_path / "odd[name.txt", "odd")
    found = FileIndex().digests(["data", "odd[name.txt", "odd[*"], tmp_path)
    assert found["data/pipe"] == "special:fifo"  # never opened: a read would block
    assert found["odd[name.txt"] == sha256(b"odd")
