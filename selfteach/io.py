"""File helpers shared by every step: atomic writes and append-only JSONL shards.

Every output is written under a temporary name in the same folder and renamed into place, so a
killed job never leaves a half-written file that a rerun would mistake for a finished one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, folder: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path` (an empty folder when `folder`); it replaces `path` only if the
    block succeeds, so a half-written file, model or checkpoint never looks finished."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = {"prefix": f".{path.name}.", "suffix": ".tmp", "dir": path.parent}
    if folder:
        tmp = Path(tempfile.mkdtemp(**name))
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700, mkstemp 0600: outputs are for every reader
    else:
        fd, tmp = tempfile.mkstemp(**name)
        os.fchmod(fd, 0o666 & ~_UMASK)
        os.close(fd)
        tmp = Path(tmp)
    try:
        yield tmp
        if folder:
            shutil.rmtree(path, ignore_errors=True)  # a rename cannot replace a folder that has files
        os.replace(tmp, path)
    finally:
        if folder:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Write all records atomically; return how many were written."""
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")
            count += 1
    return count


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL file; a malformed line is an error naming the file and line number."""
    records = []
    with open(path) as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from None
    return records


def append_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Append one batch with a single write and fsync, so a kill leaves at most one torn line."""
    data = "".join(json.dumps(record) + "\n" for record in records)
    if not data:
        return
    with open(path, "a") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def read_partial_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read the complete records of an append-only file, dropping a torn last line (a killed job's)."""
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text()
    complete, _, torn = text.rpartition("\n")
    if torn:
        with open(path, "w") as out:  # cut the torn tail so later appends start on a clean line
            out.write(complete + "\n" if complete else "")
    return [json.loads(line) for line in complete.splitlines() if line.strip()]
