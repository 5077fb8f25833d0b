"""On-disk primitives of the training record: append-only binary columns and atomic JSON files.

A column is a raw little-endian array file (`<name>.bin`) of fixed-shape rows. Writers append; the number of *valid*
rows is stored separately in a manifest that is replaced atomically (write to a temporary name, `fsync`, `rename`),
so a crash can leave extra bytes at the end of a column but never a manifest that points past valid data. Readers
memory-map exactly the committed rows, so RAM stays bounded whatever the record size. [`WriterLock`] keeps a record
to one writing run. [`file_checksum`] hashes the committed bytes of a file (xxHash, streamed), so a reader can tell a
column that changed after it was written.
"""

from __future__ import annotations

import json
import os
import socket
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RecordError
from ..logging import get_logger


#: Bytes hashed per read: RAM stays bounded whatever the column size.
_HASH_CHUNK = 1 << 23


def _new_hasher(algorithm: str):
    """A streaming hasher with `update(bytes)` and `hexdigest()` for `algorithm`."""
    if algorithm in ("xxh3_64", "xxh64"):
        try:
            import xxhash
        except ImportError as err:
            raise ImportError(
                f"This record's checksums use {algorithm!r}, which needs the `xxhash` package: `pip install xxhash`."
            ) from err
        return getattr(xxhash, algorithm)()
    if algorithm == "crc32":
        return _Crc32()
    raise RecordError(
        f"Unknown checksum algorithm {algorithm!r} in the record metadata (known: xxh3_64, xxh64, crc32); the record "
        "was written by a newer hf_prune or its record.json was edited. Upgrade hf_prune or re-train."
    )


class _Crc32:
    """zlib.crc32 behind the hashlib-style interface, the fallback when `xxhash` is missing."""

    def __init__(self):
        self.value = 0

    def update(self, data) -> None:
        self.value = zlib.crc32(data, self.value)

    def hexdigest(self) -> str:
        return f"{self.value:08x}"


def checksum_algorithm() -> str:
    """The algorithm new checksums use: `xxh3_64` (several GB/s), or `crc32` when `xxhash` is not installed."""
    try:
        import xxhash  # noqa: F401  (a dependency of `datasets`, so normally present)
    except ImportError:
        return "crc32"
    return "xxh3_64"


def bytes_checksum(data, algorithm: str) -> str:
    """Checksum of an in-memory buffer (`bytes` or a contiguous array), as a hex string."""
    hasher = _new_hasher(algorithm)
    hasher.update(memoryview(data).cast("B"))
    return hasher.hexdigest()


def file_checksum(path: str | os.PathLike, algorithm: str, nbytes: int | None = None) -> str:
    """Checksum of the first `nbytes` bytes of a file (default: all of it), streamed in 8 MiB chunks.

    Raises:
        [`RecordError`]: the file holds fewer than `nbytes` bytes.
    """
    hasher = _new_hasher(algorithm)
    if nbytes == 0:
        return hasher.hexdigest()  # an empty column may have no file at all (see `open_column`)
    if not os.path.isfile(path):
        raise RecordError(f"Record file {str(path)!r} is missing; the record is incomplete or was moved.")
    remaining = os.path.getsize(path) if nbytes is None else int(nbytes)
    view = memoryview(bytearray(min(remaining, _HASH_CHUNK)))
    with open(path, "rb", buffering=0) as handle:
        while remaining > 0:
            got = handle.readinto(view[: min(remaining, _HASH_CHUNK)])
            if not got:
                raise RecordError(
                    f"Record file {str(path)!r} ended {remaining} bytes before its committed size; it was truncated "
                    "after training. Re-run the tracked training (or resume it from a checkpoint)."
                )
            hasher.update(view[:got])
            remaining -= got
    return hasher.hexdigest()


def atomic_write_json(path: str | os.PathLike, payload: Any) -> None:
    """Write `payload` as JSON to `path` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_json(path: str | os.PathLike, what: str) -> Any:
    """Read a JSON file, turning a missing or corrupted file into a [`RecordError`] that says what it was."""
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"{what} not found at {str(path)!r}.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RecordError(f"{what} at {str(path)!r} is corrupted ({err}); it cannot be read.") from err


class ColumnWriter:
    """Append-only writer of one column: rows of shape `row_shape` and dtype `dtype`.

    Rows are buffered in memory and appended to `<directory>/<name>.bin` by [`flush`]; [`rows`] counts every row
    appended so far (flushed or not).
    """

    def __init__(self, directory: Path, name: str, dtype: str | np.dtype, row_shape: Sequence[int] = ()):
        self.path = Path(directory) / f"{name}.bin"
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(int(s) for s in row_shape)
        self._buffer: list[np.ndarray] = []
        self._flushed_rows = 0
        self._buffered_rows = 0
        if self.path.exists():
            self._flushed_rows = self.path.stat().st_size // self.row_nbytes

    @property
    def row_nbytes(self) -> int:
        return int(self.dtype.itemsize * int(np.prod(self.row_shape, dtype=np.int64)))

    @property
    def rows(self) -> int:
        return self._flushed_rows + self._buffered_rows

    @property
    def flushed_rows(self) -> int:
        """Rows already appended to the file (the rest of [`rows`] is still buffered in memory)."""
        return self._flushed_rows

    def append(self, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=self.dtype)
        if values.shape[1:] != self.row_shape:
            raise RecordError(
                f"Column {self.path.name!r} expects rows of shape {self.row_shape}, got {values.shape[1:]}."
            )
        if len(values):
            self._buffer.append(values)
            self._buffered_rows += len(values)

    def flush(self) -> None:
        if not self._buffer:
            return
        data = np.concatenate(self._buffer, axis=0) if len(self._buffer) > 1 else self._buffer[0]
        with open(self.path, "ab") as handle:
            handle.write(data.tobytes())
            handle.flush()
            os.fsync(handle.fileno())
        self._flushed_rows += len(data)
        self._buffer.clear()
        self._buffered_rows = 0

    def truncate(self, rows: int) -> None:
        """Drop buffered rows and cut the file to its first `rows` rows (used when resuming from a checkpoint)."""
        self._buffer.clear()
        self._buffered_rows = 0
        size = self.path.stat().st_size if self.path.exists() else 0
        if size < rows * self.row_nbytes:
            raise RecordError(
                f"Column {self.path.name!r} holds {size // max(self.row_nbytes, 1)} rows but the checkpoint "
                f"manifest expects {rows}: the record was truncated or deleted after the checkpoint was written, or "
                "the checkpoint belongs to another run (resume from a checkpoint of this `output_dir`)."
            )
        if not self.path.exists():
            self.path.touch()
        with open(self.path, "r+b") as handle:
            handle.truncate(rows * self.row_nbytes)
        self._flushed_rows = rows


def open_column(directory: Path, name: str, dtype: str | np.dtype, row_shape: Sequence[int], rows: int) -> np.ndarray:
    """Memory-map the first `rows` rows of a column written by [`ColumnWriter`] (read-only)."""
    path = Path(directory) / f"{name}.bin"
    dtype = np.dtype(dtype)
    shape = (int(rows), *(int(s) for s in row_shape))
    if rows == 0:
        return np.zeros(shape, dtype=dtype)
    if not path.is_file():
        raise RecordError(f"Record column {str(path)!r} is missing; the record is incomplete or was moved.")
    needed = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = path.stat().st_size
    if size < needed:
        raise RecordError(
            f"Record column {str(path)!r} is truncated: {size} bytes on disk, {needed} expected for {rows} rows. "
            "Re-run the tracked training (or resume it from its last checkpoint)."
        )
    return np.memmap(path, dtype=dtype, mode="r", shape=shape)


def write_array(directory: Path, name: str, values: np.ndarray) -> dict[str, Any]:
    """Write a whole array as a column file and return its descriptor for a manifest.

    The descriptor holds `dtype`, `shape`, and the `checksum` (with its `checksum_algorithm`) of exactly the bytes
    written, so a reader can verify them.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    values = np.ascontiguousarray(values)
    payload = values.tobytes()
    algorithm = checksum_algorithm()
    path = directory / f"{name}.bin"
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return {
        "dtype": values.dtype.str,
        "shape": list(values.shape),
        "checksum": bytes_checksum(payload, algorithm),
        "checksum_algorithm": algorithm,
    }


def read_array(directory: Path, name: str, descriptor: dict[str, Any]) -> np.ndarray:
    """Memory-map an array written by [`write_array`] from its descriptor."""
    shape = tuple(int(s) for s in descriptor["shape"])
    rows = shape[0] if shape else 1
    return open_column(directory, name, descriptor["dtype"], shape[1:], rows)


#: Lock files held by this process (two trainers in one process must not share a record either).
_HELD_LOCKS: set[str] = set()


class WriterLock:
    """An exclusive claim on a record directory for one training run: `<record_dir>.lock`, created atomically.

    Two runs writing one record interleave their rows in the same column files and leave a record whose manifest
    counts one run's rows while the files hold both (the epochs of its rows no longer line up). The lock turns that
    into an error at the start of the second run. A lock left by a killed run on this machine (its process is gone)
    is taken over; a lock from another machine is never guessed stale.
    """

    def __init__(self, record_dir: str | os.PathLike):
        self.record_dir = Path(record_dir)
        self.path = self.record_dir.with_name(f"{self.record_dir.name}.lock")
        self._key = str(self.path.resolve())  # this process's registry key (`_HELD_LOCKS`)
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is None and self._age() < 10.0:
                    owner = {"pid": "?", "host": "?"}  # being written by a run that has just started
                if owner is not None and self._alive(owner):
                    raise RecordError(
                        f"Another training run (pid {owner.get('pid')} on {owner.get('host')!r}) is writing the "
                        f"record {str(self.record_dir)!r}: two runs writing one record interleave their "
                        "rows and corrupt it. Wait for that run to finish, give this one another `output_dir` (or "
                        f"`record_dir`), or, if that run is gone, delete {str(self.path)!r}."
                    ) from None
                get_logger(__name__).warning(f"Taking over {str(self.path)!r}, the lock of a run that is gone.")
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(payload)
            self.held = True
            _HELD_LOCKS.add(self._key)
            return
        raise RecordError(f"Could not create the record lock {str(self.path)!r}; another run keeps re-creating it.")

    def release(self) -> None:
        if self.held:
            _HELD_LOCKS.discard(self._key)
            self.path.unlink(missing_ok=True)
            self.held = False

    def _owner(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # unreadable or half-written (see `acquire`: young means just created, old means stale)

    def _age(self) -> float:
        try:
            return time.time() - self.path.stat().st_mtime
        except OSError:
            return float("inf")

    def _alive(self, owner: dict[str, Any]) -> bool:
        if owner.get("host") != socket.gethostname() or not str(owner.get("pid")).isdigit():
            return True  # cannot check a process on another machine: assume it runs
        pid = int(owner["pid"])
        if pid == os.getpid():
            return self._key in _HELD_LOCKS  # another trainer of this process, or a leftover
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:  # e.g. PermissionError: the process exists under another user
            pass
        return True
