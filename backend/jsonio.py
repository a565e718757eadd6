"""Small JSON helpers shared by every writer so files on disk have one format."""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .durable import fsync_dir
from .secrets import redact


def canonical_json(obj: Any) -> str:
    """Key-sorted, whitespace-free JSON: the form hashed for md5 and compared for equality."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def dumps_line(obj: Any) -> str:
    """One JSON object on one line (events, records); non-JSON values fall back to str.
    Secrets from the environment are masked (see secrets.py)."""
    return redact(json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str))


TEMP_SUFFIX = ".tmp"
# A temp file's name carries its writer's pid, so a later runner can tell the leftovers of
# a killed writer (`stale_temp_files`) from a file another live process is writing now.
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[^.]+\.tmp$")
# Temp files without a pid in their name (older versions) count as stale after this long.
UNNAMED_TEMP_STALE_SECONDS = 60.0


def temp_prefix(name: str) -> str:
    return f".{name}.{os.getpid()}-"


def stale_temp_files(folder: Path, alive: Callable[[int], bool]) -> list[Path]:
    """Temp files of `write_atomic` in `folder` whose writer is gone (killed mid-write)."""
    out = []
    now = time.time()
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for entry in entries:
        if not (entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX)):
            continue
        m = _TEMP_NAME.match(entry.name)
        try:
            if m is not None:
                stale = not alive(int(m.group("pid")))
            else:
                stale = now - entry.stat().st_mtime > UNNAMED_TEMP_STALE_SECONDS
        except OSError:
            continue
        if stale and entry.is_file():
            out.append(entry)
    return out


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
    text = redact(text)  # every JSON file of a run is written here: secrets never reach disk
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=temp_prefix(path.name), suffix=TEMP_SUFFIX, dir=path.parent
        )
    except OSError as exc:  # name the file being written, not its temp twin
        raise OSError(exc.errno, exc.strerror, str(path)) from None
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
