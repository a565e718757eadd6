"""What a data-parallel rank other than 0 holds of rank 0's checkpoints, and checkpoint
swaps over it: rank 0's files are never touched, the rank's swaps never fail."""

from __future__ import annotations

from pathlib import Path

from labdeck.backend.durable import swap_dir
from labdeck.backend.ranks import mirror_checkpoints


def _folder(path: Path, text: str) -> Path:
    path.mkdir(parents=True)
    (path / "weights.bin").write_text(text)
    return path


def test_swaps_over_a_linked_folder_leave_its_target_alone(tmp_path: Path) -> None:
    """A rank's `latest` used to be a link to rank 0's: the first swap left `.old-latest`
    behind as a link, the second failed renaming a folder onto it."""
    target = _folder(tmp_path / "rank0" / "latest", "epoch 1")
    mine = tmp_path / "rank1"
    mine.mkdir()
    (mine / "latest").symlink_to(target)
    for epoch in (2, 3, 4):
        swap_dir(_folder(mine / ".staging-latest", f"epoch {epoch}"), mine / "latest")
        assert (mine / "latest" / "weights.bin").read_text() == f"epoch {epoch}"
        assert sorted(p.name for p in mine.iterdir()) == ["latest"]
    assert (target / "weights.bin").read_text() == "epoch 1"


def test_the_mirror_is_the_ranks_own_folders_linking_rank_0s_files(tmp_path: Path) -> None:
    source = tmp_path / "checkpoints"
    _folder(source / "latest", "epoch 3")
    _folder(source / "persona" / "step-10", "step 10")
    _folder(source / ".staging-latest", "half written")
    _folder(source / ".old-best", "epoch 2")  # killed between a swap's two renames
    mirror = tmp_path / "shadow" / "checkpoints"
    mirror_checkpoints(source, mirror)
    assert sorted(p.name for p in mirror.iterdir()) == ["best", "latest", "persona"]
    for sub in ("latest", "persona", "persona/step-10", "best"):
        assert (mirror / sub).is_dir() and not (mirror / sub).is_symlink()
    assert (mirror / "best" / "weights.bin").read_text() == "epoch 2"
    assert (mirror / "latest" / "weights.bin").is_symlink()
    # the rank's own swaps, at any depth, only move its own entries
    swap_dir(_folder(mirror / ".staging-latest", "epoch 4"), mirror / "latest")
    swap_dir(
        _folder(mirror / "persona" / ".staging-step-10", "again"), mirror / "persona" / "step-10"
    )
    assert (source / "latest" / "weights.bin").read_text() == "epoch 3"
    assert (source / "persona" / "step-10" / "weights.bin").read_text() == "step 10"
    assert (mirror / "latest" / "weights.bin").read_text() == "epoch 4"
