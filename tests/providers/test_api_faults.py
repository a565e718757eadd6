"""API faults named truthfully and handled as they deserve: bad bodies and cut connections
retried, refused credentials stopping at once, one pacing per endpoint and key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from together_loopback import Loopback, loopback

from labdeck.backend.providers import ChatRequest, ProviderAuthError, ProviderError, chat_provider
from labdeck.backend.providers.together import TogetherFineTune

KEY = "tk-loopback-faults-0123456789"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Loopback]:
    monkeypatch.setenv("TOGETHER_API_KEY", KEY)
    with loopback() as lb:
        yield lb


def _reqs(n: int) -> list[ChatRequest]:
    return [ChatRequest([{"role": "user", "content": f"question {i}"}]) for i in range(n)]


def _training_file(tmp_path: Path, rows: int = 400) -> Path:
    path = tmp_path / "train.jsonl"
    row = {
        "messages": [
            {"role": "user", "content": "a question " * 5},
            {"role": "assistant", "content": "an answer " * 5, "weight": 1},
        ]
    }
    path.write_text((json.dumps(row) + "\n") * rows)
    return path


def test_a_malformed_200_is_retried_and_named_as_such(server: Loopback) -> None:
    server.fault("/v1/chat", "malformed", 2)
    p = chat_provider("together", "m", base_url=server.url, concurrency=1, backoff=0.01)
    res = p.chat(_reqs(3))
    assert all(r.ok for r in res) and sum(r.attempts - 1 for r in res) == 2
    server.fault("/v1/chat", "malformed", 10)
    bad = chat_provider("together", "m", base_url=server.url, max_retries=1, backoff=0.01)
    [r] = bad.chat(_reqs(1))
    assert r.error is not None
    assert "malformed response" in r.error and "after 2 attempts" in r.error
    assert "connection" not in r.error


def test_a_cut_off_upload_is_retried_and_named_as_such(server: Loopback, tmp_path: Path) -> None:
    path = str(_training_file(tmp_path))
    ft = TogetherFineTune(base_url=server.url, backoff=0.01)
    server.fault("/upload", "cut", 1, method="PUT")
    fid = ft.upload(path)
    assert server.state.files[fid]["content"] == Path(path).read_bytes()
    server.fault("/upload", "cut", 10, method="PUT")
    with pytest.raises(ProviderError, match=r"connection cut \(.+\) after 3 attempts"):
        TogetherFineTune(base_url=server.url, backoff=0.01, max_retries=2).upload(path)


@pytest.mark.parametrize("status", ["401", "403"])
def test_refused_credentials_stop_everything_at_once(server: Loopback, status: str) -> None:
    server.fault("/v1/chat", status, 1000)
    p = chat_provider("together", "m", base_url=server.url, concurrency=4, delay=0.02)
    seen: list[int] = []
    with pytest.raises(ProviderAuthError) as err:
        p.chat(_reqs(35), on_result=lambda i, r: seen.append(i))
    p.close()
    message = str(err.value)
    assert f"HTTP {status}" in message and "refused the credentials" in message
    assert "\n" not in message
    assert not seen  # no item was handed back as an ordinary per-item failure
    assert len(server.arrived("/v1/chat")) <= 4  # at most the ones already in flight
    # the same key on another model or a fine-tune call is refused without a request
    other = chat_provider("together", "other", base_url=server.url)
    with pytest.raises(ProviderAuthError):
        other.chat(_reqs(1))
    assert len(server.arrived("/v1/chat")) <= 4


def test_delay_holds_from_the_first_request(server: Loopback) -> None:
    p = chat_provider("together", "m", base_url=server.url, concurrency=8, delay=0.1)
    p.chat(_reqs(8))
    times = server.arrived("/v1/chat")
    gaps = [b - a for a, b in pairwise(times)]
    # unpaced at the wire, the first requests left together (gaps of 1-13 ms) while the
    # client built its first connection; arrival times jitter a little on a busy machine
    assert len(gaps) == 7 and min(gaps) >= 0.06 and times[-1] - times[0] >= 0.65, gaps


def test_one_limiter_per_endpoint_and_key_across_models_and_calls(
    server: Loopback, tmp_path: Path
) -> None:
    """Two models and the fine-tune calls of one run share requests_per_minute=300 (0.2 s)."""
    first = chat_provider("together", "a", base_url=server.url, requests_per_minute=300)
    first.chat(_reqs(3))
    second = chat_provider("together", "b", base_url=server.url, requests_per_minute=300)
    second.chat(_reqs(3))
    ft = TogetherFineTune(base_url=server.url, requests_per_minute=300)
    ft.list_jobs()
    times = server.arrived("/v1/")
    gaps = [b - a for a, b in pairwise(times)]
    assert len(times) == 7 and min(gaps) >= 0.14 and times[-1] - times[0] >= 1.15, gaps
    # another key is another limiter: it does not wait for this one
    assert first.limiter is second.limiter is ft.limiter
