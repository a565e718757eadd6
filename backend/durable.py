"""Durability on disk: fsync of files and folders, and the atomic swap of a checkpoint folder.

A flush hands bytes to the kernel, which is enough to survive a SIGKILL of the writer,
but not a power loss or a node crash: the page cache dies with the machine. A rename
is only durable once the folder that holds the name is fsynced. These helpers are what
every writer in backend/ uses so the rule is applied in one place.

Checkpoint folders are replaced by two renames (current -> `.old-<name>`, staging ->
current). A kill between them leaves no current folder; `recover_swaps` (run before a
kind reads its checkpoints) puts the old one back, so a reader always finds the last
complete checkpoint under its usual name.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

OLD_PREFIX = ".old-"
STAGING_PREFIX = ".staging-"

# The points between the steps of `swap_dir`, in order; a hook may stop there.
SWAP_STEPS = ("staged", "old_moved_aside", "new_in_place", "old_removed")


def fsync_file(path: Path) -> None:
    """Force a file's data to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make the names in a folder (creations, renames, removals) survive a crash.

    Some filesystems refuse fsync on a folder (EINVAL/EBADF); there the rename is as
    durable as the filesystem can make it, so the refusal is not an error.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and folder under `root` (a staged checkpoint before it goes live)."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            fsync_file(Path(folder) / name)
        fsync_dir(Path(folder))


def remove_entry(path: Path) -> None:
    """Remove whatever `path` is: a folder tree, a file, or a symlink (only the link).

    A data-parallel rank's checkpoints may be links to rank 0's (see
    `runner.mirror_checkpoints`); `shutil.rmtree` refuses a link, and with
    `ignore_errors` it would leave it behind for the next rename to trip over.
    """
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def recover_swaps(parent: Path) -> list[str]:
    """Finish or undo swaps a kill interrupted; returns the names put back.

    `.old-X` with no `X`: killed between the renames, the old folder is the last
    complete one, so it becomes `X` again. `.old-X` next to `X`: killed after the new
    folder went live, so the old one is garbage. Staging folders are always garbage.
    """
    if not parent.is_dir():
        return []
    restored = []
    for entry in sorted(parent.iterdir()):
        if entry.name.startswith(OLD_PREFIX):
            live = parent / entry.name[len(OLD_PREFIX) :]
            if live.exists() or live.is_symlink():
                remove_entry(entry)
            else:
                entry.rename(live)
                restored.append(live.name)
        elif entry.name.startswith(STAGING_PREFIX):
            remove_entry(entry)
    if restored:
        fsync_dir(parent)
    return restored


def swap_dir(staging: Path, final: Path, on_step: Callable[[str], None] | None = None) -> None:
    """Replace folder `final` by the complete folder `staging`, crash-safe.

    The staged files are fsynced first, so the new name never points at data still in
    the page cache; each rename is followed by an fsync of the parent. `on_step(name)`
    is called at each point of SWAP_STEPS (fault injection in tests).
    """
    step = on_step or (lambda _name: None)
    parent = final.parent
    old = parent / f"{OLD_PREFIX}{final.name}"
    fsync_tree(staging)
    step("staged")
    if final.exists() or final.is_symlink():
        remove_entry(old)
        final.rename(old)
        fsync_dir(parent)
        step("old_moved_aside")
        staging.rename(final)
        fsync_dir(parent)
        step("new_in_place")
        remove_entry(old)
    else:
        step("old_moved_aside")
        staging.rename(final)
        fsync_dir(parent)
        step("new_in_place")
    step("old_removed")
