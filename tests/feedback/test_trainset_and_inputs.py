"""Training file weights, the local mask against them, and bad inputs refused at validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labdeck.backend.errors import UserError
from labdeck.backend.kinds.feedback.conversations import read_conversations
from labdeck.backend.kinds.feedback.trainset import (
    check_training_jsonl,
    training_row,
    weighted_labels,
    write_training_jsonl,
)

MULTI_TURN = {
    "conversation_id": "hike",
    "conversation_context": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "I'm going hiking tomorrow."},
        {"role": "assistant", "content": "Have fun!"},
        {"role": "user", "content": "What should I pack?"},
    ],
    "improved_response": "Water, snacks, a map, sunscreen and a rain jacket.",
}


def test_training_jsonl_has_integer_weights_on_the_last_assistant_message_only(
    tmp_path: Path,
) -> None:
    path = tmp_path / "training.jsonl"
    assert write_training_jsonl([MULTI_TURN, MULTI_TURN], path) == 2
    raw = path.read_text().splitlines()[0]
    assert '"weight": 1.0' not in raw and '"weight": 0.0' not in raw
    msgs = json.loads(raw)["messages"]
    assert [m["weight"] for m in msgs] == [0, 0, 0, 0, 1]
    assert all(type(m["weight"]) is int for m in msgs)
    assert msgs[2]["role"] == "assistant" and msgs[2]["weight"] == 0  # earlier answer: context
    assert check_training_jsonl(path) == 2


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: m[-1].update(weight=1.0), "must be the integer 0 or 1"),
        (lambda m: m[-1].update(weight=True), "must be the integer 0 or 1"),
        (lambda m: m[2].update(weight=1), "only the last message"),
        (lambda m: m.pop(), "only the last message"),
        (lambda m: m.insert(1, dict(m[1])), "roles must be"),
    ],
)
def test_checker_refuses_what_together_would_reject(tmp_path: Path, mutate, message: str) -> None:
    row = training_row(MULTI_TURN)
    mutate(row["messages"])
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(UserError, match=message):
        check_training_jsonl(path)


def test_local_mask_equals_the_together_weights() -> None:
    from transformers import AutoTokenizer

    from labdeck.backend.models import ensure_embedded
    from labdeck.backend.training import encode_conversation

    tok = AutoTokenizer.from_pretrained(ensure_embedded(), local_files_only=True)
    row = training_row(MULTI_TURN)
    messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    local = encode_conversation(tok, messages, 512, "last_assistant")
    from_weights = weighted_labels(tok, row, 512)
    assert local.labels == from_weights
    trained = tok.decode([t for t in local.labels if t != -100])
    assert "Water, snacks" in trained and "Have fun" not in trained and "hiking" not in trained


def _write(tmp_path: Path, text: str, name: str = "c.jsonl") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_conversation_shapes_and_their_errors(tmp_path: Path) -> None:
    ok = {
        "id": 7,
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
    }
    convs = read_conversations(
        _write(tmp_path, json.dumps([{**ok, "feedback": "be polite"}]), "c.json")
    )
    assert (convs[0].id, convs[0].original, convs[0].feedback) == ("7", "yo", "be polite")
    cases = {
        json.dumps(
            {"messages": [{"role": "user", "content": "hi"}]}
        ): r"c\.jsonl:1: no assistant message",
        '\n{"messages": [}': r"c\.jsonl:2: bad JSON at column 15",
        json.dumps(
            {"messages": [{"role": "user"}]}
        ): r'c\.jsonl:1: message 1: missing key "content"',
        json.dumps({"text": "x"}): r'c\.jsonl:1: missing key "messages"',
        json.dumps(ok): r"c\.jsonl:1: no user feedback after the last assistant message",
    }
    for text, message in cases.items():
        with pytest.raises(UserError, match=message):
            read_conversations(_write(tmp_path, text))


@pytest.mark.slow
def test_bad_inputs_exit_2_with_one_line_and_no_run_dir(
    results_dir: Path, lab, tmp_path: Path
) -> None:
    bad = _write(tmp_path, json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    proc = lab("run", "--kind", "feedback", "--set", f"conversations={json.dumps(str(bad))}")
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "no assistant message" in err[0] and f"{bad}:1" in err[0]
    missing = lab("run", "--kind", "feedback", "--set", 'training_input="/nonexistent/p.json"')
    assert missing.returncode == 2 and "params.training_input" in missing.stderr
    assert list(results_dir.iterdir()) == []
