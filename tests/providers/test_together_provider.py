"""The together provider against the loopback server, through the real SDK."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from together_loopback import Loopback, loopback

from labdeck.backend.errors import UserError
from labdeck.backend.providers import ChatRequest, JobSpec, RateLimiter, chat_provider
from labdeck.backend.providers.ratelimit import RetryPolicy, parse_retry_after
from labdeck.backend.providers.together import TogetherFineTune, normalize_base_url

KEY = "tk-loopback-0123456789"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Loopback]:
    monkeypatch.setenv("TOGETHER_API_KEY", KEY)
    with loopback() as lb:
        yield lb


def _reqs(n: int, **kw) -> list[ChatRequest]:
    return [
        ChatRequest([{"role": "user", "content": f"question number {i}"}], **kw) for i in range(n)
    ]


@pytest.mark.parametrize("openai_style", [False, True])
def test_chat_in_order_with_logprobs_and_key_from_env(server: Loopback, openai_style: bool) -> None:
    p = chat_provider(
        "together",
        "base/echo",
        base_url=server.url + "/v1",
        concurrency=4,
        openai_logprobs=openai_style,
    )
    seen: list[int] = []
    res = p.chat(_reqs(6, logprobs=3, max_tokens=8), on_result=lambda i, r: seen.append(i))
    assert [r.text for r in res] == [f"Improved: question number {i}" for i in range(6)]
    assert sorted(seen) == list(range(6))
    first = res[0].logprobs
    assert first is not None and first[0].token == "Improved:" and len(first[0].top) == 3
    assert res[0].tokens_out == 4 and res[0].tokens_in == 3 and res[0].status == 200
    assert server.state.auth_headers == {f"Bearer {KEY}"}
    p.close()


def test_missing_key_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    with pytest.raises(UserError, match=r"\$TOGETHER_API_KEY is not set"):
        chat_provider("together", "m")
    assert normalize_base_url("http://h:8000/v1/") == "http://h:8000"


def test_429_storm_loses_nothing(server: Loopback) -> None:
    server.fault("/v1/chat", "429", 8, retry_after=0.2)
    p = chat_provider("together", "m", base_url=server.url, concurrency=4, backoff=0.01)
    res = p.chat(_reqs(10))
    assert all(r.ok for r in res) and len({r.text for r in res}) == 10
    snap = p.stats.snapshot()
    assert snap["retries"] == 8 and snap["failures"] == 0 and snap["last_status"] == 200


def test_retry_after_is_waited_out_before_the_next_request(server: Loopback) -> None:
    server.fault("/v1/chat", "429", 4, retry_after=0.3)
    p = chat_provider("together", "m", base_url=server.url, concurrency=1, backoff=0.01)
    assert all(r.ok for r in p.chat(_reqs(2)))
    log = server.statuses("/v1/chat")
    gaps = [b[0] - a[0] for a, b in pairwise(log) if a[1] == 429]
    assert len(gaps) == 4 and min(gaps) >= 0.3 * 0.95  # the server's wait, not the 0.01 backoff


def test_500_drop_and_slow_are_retried(server: Loopback) -> None:
    server.fault("/v1/chat", "500", 2)
    server.fault("/v1/chat", "drop", 2)
    server.fault("/v1/chat", "slow", 1, seconds=1.5)
    p = chat_provider(
        "together", "m", base_url=server.url, concurrency=2, backoff=0.01, timeout=0.5
    )
    res = p.chat(_reqs(4))
    assert all(r.ok for r in res)
    assert sum(r.attempts - 1 for r in res) == 5


def test_final_failure_is_a_result_naming_model_and_status(server: Loopback) -> None:
    server.fault("/v1/chat", "429", 100, retry_after=0.01)
    p = chat_provider("together", "big/model", base_url=server.url, concurrency=1, max_retries=2)
    res = p.chat(_reqs(2))
    assert [r.status for r in res] == [429, 429]
    assert res[0].error is not None
    assert "model 'big/model': HTTP 429 rate limited" in res[0].error
    assert "after 3 attempts" in res[0].error and res[0].attempts == 3


def test_delay_is_a_floor_between_request_starts(server: Loopback) -> None:
    server.state.latency = 0.2
    p = chat_provider("together", "m", base_url=server.url, concurrency=8, delay=0.1)
    t0 = time.monotonic()
    p.chat(_reqs(6))
    elapsed = time.monotonic() - t0
    assert 0.5 <= elapsed < 1.3  # 5 gaps of 0.1 s, latency overlapped (one at a time: 1.8 s)


def test_limiter_spacing_and_pause_with_a_fake_clock() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    lim = RateLimiter(delay=0.2, requests_per_minute=120, clock=lambda: now[0], sleep=sleep)
    assert lim.interval == 0.5  # 120 rpm is stricter than delay 0.2
    lim.acquire()
    lim.acquire()
    lim.pause_until(now[0] + 3.0)
    lim.acquire()
    assert slept == [0.5, 3.0]
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    import random

    w = [RetryPolicy(base=1.0, cap=8.0).wait(a, None, random.Random(0)) for a in (1, 2, 3, 9)]
    assert 0.5 <= w[0] <= 1.0 and 1.0 <= w[1] <= 2.0 and 2.0 <= w[2] <= 4.0 and w[3] <= 8.0


def _training_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    row = {
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b", "weight": 1},
        ]
    }
    path.write_text(json.dumps(row) + "\n")
    return path


def test_fine_tune_job_lifecycle(server: Loopback, tmp_path: Path) -> None:
    ft = TogetherFineTune(base_url=server.url, backoff=0.01)
    fid = ft.upload(str(_training_file(tmp_path)))
    assert server.state.files[fid]["content"].startswith(b'{"messages"')
    job = ft.create(JobSpec(fid, "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", 2, 2e-5, "exp"))
    body = server.state.jobs[job.id].body
    assert body["n_epochs"] == 2 and body["suffix"] == "exp"
    assert body["training_type"]["type"] == "Lora"
    statuses = [ft.retrieve(job.id).status for _ in range(4)]
    assert statuses == ["running", "running", "running", "completed"]
    done = ft.retrieve(job.id)
    assert done.output_name and done.finished
    assert ft.losses(job.id)[0] == (1, 2.0)
    assert ft.events(job.id)[-1].type == "job_complete"
    full = ft.create(JobSpec(fid, "m", lora=False))
    assert server.state.jobs[full.id].body["training_type"]["type"] == "Full"
    assert ft.cancel(full.id).status == "cancelled"


def test_create_whose_answer_is_lost_adopts_the_job_instead_of_a_second(
    server: Loopback, tmp_path: Path
) -> None:
    ft = TogetherFineTune(base_url=server.url, backoff=0.01)
    fid = ft.upload(str(_training_file(tmp_path)))
    server.fault("/v1/fine-tunes$", "lost", 1, method="POST")
    job = ft.create(JobSpec(fid, "m"))
    assert server.state.jobs_created == 1 and job.id in server.state.jobs
    assert ft.find_job(fid) == job


def test_failed_job_carries_the_api_message(server: Loopback, tmp_path: Path) -> None:
    server.state.fail_job = "CUDA error: device-side assert"
    server.state.job_polls = 1
    ft = TogetherFineTune(base_url=server.url)
    job = ft.create(JobSpec(ft.upload(str(_training_file(tmp_path))), "m"))
    info = ft.retrieve(job.id)
    assert info.status == "error" and info.message == "CUDA error: device-side assert"
