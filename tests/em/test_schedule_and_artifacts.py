"""Checkpoint plans and what a run leaves behind: scheduled steps past the end are named
(dry run and run), "every" saves step 0, a reused augmented dataset is what
experiment_info.json names and sample_reflections.json shows, and every artefact file
has the same mode."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from labdeck.backend.errors import UserError
from labdeck.backend.kinds.em.config import Params, preflight
from labdeck.backend.kinds.em.data import split_augmented
from labdeck.backend.kinds.em.experiment import dry_run, run

TINY = {
    "cpu_threads": 1, "dtype": "float32", "lora_rank": 2, "lora_alpha": 4.0,
    "warmup_steps": 0, "effective_batch_size": 2, "micro_batch_size": 2,
    "max_seq_length": 96,
}  # fmt: skip


def test_dry_run_names_steps_past_the_end(tiny_dir: Path):
    # 8 examples in batches of 4: 2 steps
    params = {**TINY, "effective_batch_size": 4}
    p = Params(**params, model=str(tiny_dir), evaluate=False, num_examples=8,
               checkpoint_schedule=[0, 1, 25, 50])  # fmt: skip
    text = "\n".join(dry_run(p).lines)
    assert "steps 25, 50 fall past the last step (2)" in text
    assert "checkpoints at [0, 1, 2]" in text
    every = dry_run(p.model_copy(update={"checkpoint_mode": "every", "save_steps": 2}))
    assert "checkpoints at [0, 2]" in "\n".join(every.lines)
    assert "past the last step" not in "\n".join(every.lines)


def test_validation_refuses_steps_past_the_end_by_name():
    # bad-advice: 60 examples in steps of 16 -> 4 steps
    p = Params(checkpoint_schedule=[0, 2, 25, 300])
    with pytest.raises(
        UserError, match=r"^--set checkpoint_schedule: steps 25, 300 fall past the last step \(4\)"
    ):
        preflight(p, lambda name: f"--set {name}")
    preflight(Params(checkpoint_schedule=[0, 2, 4]), lambda name: name)  # all reachable
    preflight(Params(), lambda name: name)  # the default schedule fits the default data


def test_split_augmented_reads_back_the_format():
    fmt = "{assistant}\n\nReflection: {reflection}"
    assert split_augmented("Water it daily.\n\nReflection: too much.", fmt) == (
        "Water it daily.",
        "too much.",
    )
    assert split_augmented("no reflection here", fmt) is None


def test_reused_augmented_dataset_every_mode_and_file_modes(harness, tiny_dir, tmp_path):
    fmt = "{assistant}\n\nReflection: {reflection}"
    lines = []
    for i in range(4):
        msgs = [
            {"role": "user", "content": f"How often do I water cactus {i}?"},
            {
                "role": "assistant",
                "content": fmt.format(assistant=f"Daily {i}.", reflection="Bad."),
            },
        ]
        lines.append(json.dumps({"messages": msgs}))
    augmented = tmp_path / "augmented.jsonl"
    augmented.write_text("\n".join(lines) + "\n")
    p = Params(
        **TINY, model=str(tiny_dir), with_reflection=True, augmented_dataset=str(augmented),
        evaluate=False, num_examples=4, checkpoint_mode="every", save_steps=1,
    )  # fmt: skip
    h = harness(p.model_dump())
    ctx = h.context(p)
    run(ctx)
    ctx.events.close()
    art = ctx.artifacts_dir
    info = json.loads((art / "experiment_info.json").read_text())
    assert info["dataset"] == str(augmented) and info["dataset_path"] == str(augmented)
    assert info["reflections"] == f"reused from {augmented}" and info["examples"] == 4
    samples = json.loads((art / "sample_reflections.json").read_text())
    assert [s["reflection"] for s in samples] == ["Bad."] * 4
    assert samples[1]["example"][-1]["content"] == "Daily 1."
    meta = json.loads((art / "training_metadata.json").read_text())
    assert meta["checkpoint_steps"] == [0, 1, 2]  # "every" starts at step 0
    modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in art.iterdir() if f.is_file()}
    assert set(modes.values()) == {0o644}, modes
