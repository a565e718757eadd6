"""Small JSON helpers shared by every writer so files on disk have one format."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .durable import fsync_dir


def canonical_json(obj: Any) -> str:
    """Key-sorted, whitespace-free JSON: the form hashed for md5 and compared for equality."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def dumps_line(obj: Any) -> str:
    """One JSON object on one line (events, records); non-JSON values fall back to str."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)


def _file_mode() -> int:
    """The mode `open()` gives a new file (0o666 less the umask, 0644 by default): mkstemp's
    0600 would make the files of one run readable by some tools and not others."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` so that a reader sees the old or the new file, never a torn one.

    The temp file lives in the same folder (os.replace is only atomic within a
    filesystem) and is fsynced before the rename so a crash cannot leave an empty file;
    the folder is fsynced after it so the new name itself survives a crash.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
