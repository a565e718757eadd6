"""Append-only files survive a writer killed mid-line; readers are incremental."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from unittest.mock import patch

from labdeck.backend.events import EventWriter
from labdeck.backend.jsonl import JsonlAppender, JsonlReader, iter_line_blocks, repair_torn_tail
from labdeck.backend.ledger import Ledger, key_digest, scan_digests, scan_keys, unit_key


def test_reader_is_incremental_and_waits_for_a_torn_line(tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_text('{"a":1}\n{"a":2}\n{"a":', encoding="utf-8")
    r = JsonlReader(p)
    assert [o["a"] for o in r.read_new()] == [1, 2]
    assert r.read_new() == []
    with open(p, "a", encoding="utf-8") as fh:
        fh.write('3}\n{"a":4}\n')
    assert [o["a"] for o in r.read_new()] == [3, 4]


def test_corrupt_middle_line_is_counted_not_fatal(tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_text('{"a":1}\nnot json\n{"a":2}\n', encoding="utf-8")
    r = JsonlReader(p)
    assert [o["a"] for o in r.read_new()] == [1, 2]
    assert r.bad_lines == 1


def test_appender_repairs_torn_tail_before_appending(tmp_path: Path) -> None:
    p = tmp_path / "r.jsonl"
    p.write_text('{"key":"a"}\n{"key":"b", "x": [1, 2', encoding="utf-8")
    with JsonlAppender(p) as out:
        out.append({"key": "c"})
    assert [json.loads(line)["key"] for line in p.read_text().splitlines()] == ["a", "c"]
    assert repair_torn_tail(p) == 0


def test_tail_reader_reads_only_the_end(tmp_path: Path) -> None:
    p = tmp_path / "big.jsonl"
    with JsonlAppender(p) as out:
        for i in range(5000):
            out.append({"i": i})
    objs = JsonlReader.from_tail(p, 200).read_new()
    assert objs and objs[-1]["i"] == 4999 and len(objs) < 30


def test_event_seq_continues_after_reopen(tmp_path: Path) -> None:
    p = tmp_path / "events.jsonl"
    w = EventWriter(p)
    w.emit("log", message="one")
    w.emit("log", message="two")
    w.close()
    with open(p, "a") as fh:
        fh.write('{"t": 1, "seq": 9')  # killed mid-line
    w2 = EventWriter(p)
    e = w2.emit("log", message="three")
    w2.close()
    assert e["seq"] == 2
    evs = JsonlReader(p).read_new()
    assert [x["seq"] for x in evs] == [0, 1, 2]


def test_ledger_scan_and_refuses_doubles(tmp_path: Path) -> None:
    p = tmp_path / "records.jsonl"
    led = Ledger(p)
    for i in range(10):
        led.append(unit_key("u", i), {"i": i, "text": "x" * i})
    led.close()
    assert scan_keys(p) == {unit_key("u", i) for i in range(10)}
    led = Ledger(p)
    assert unit_key("u", 3) in led and len(led) == 10
    try:
        led.append(unit_key("u", 3), {})
    except ValueError as exc:
        assert "already recorded" in str(exc)
    else:
        raise AssertionError("double record accepted")
    # a record whose key is not first on the line is still found
    with open(p, "a") as fh:
        fh.write('{"i": 99, "key": "late"}\n')
    assert "late" in scan_keys(p)


def test_digest_scan_reads_blocks_whatever_their_boundaries(tmp_path: Path) -> None:
    """The resume scan reads fixed-size blocks: a line cut by a block boundary, a line
    from another tool, a cut-short record and a torn tail are each judged as a whole."""
    p = tmp_path / "records.jsonl"
    led = Ledger(p)
    for i in range(50):
        led.append(unit_key("u", i), {"i": i, "text": "é" * (i % 7)})
    led.close()
    with open(p, "ab") as fh:
        fh.write(b'{"i": 50, "key": "foreign"}\n')
        first = p.read_bytes().splitlines()[0]
        fh.write(first[:-1] + b"\n")  # a record line missing its closing brace
        fh.write(b'{"key_sha1":"0123')  # a torn tail
    expected = {key_digest(unit_key("u", i)) for i in range(50)} | {key_digest("foreign")}
    whole = scan_digests(p)
    assert whole == expected
    for block in (7, 64, 1000):
        assert b"".join(iter_line_blocks(p, block)) == p.read_bytes().rsplit(b"\n", 1)[0] + b"\n"
        with patch(
            "labdeck.backend.ledger.iter_line_blocks", partial(iter_line_blocks, block=block)
        ):
            assert scan_digests(p) == expected, block
