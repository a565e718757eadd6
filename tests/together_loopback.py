"""A loopback HTTP server speaking the part of Together's API that labdeck uses.

The real `together` SDK is pointed at it by base URL, so tests and benchmarks exercise
the SDK's own request building, file upload protocol (POST, 302 to an upload URL, PUT,
preprocess) and response parsing without a network.

Faults are injected per route prefix with `fault(prefix, kind, count, ...)`:
`"429"` (with Retry-After), `"500"`, `"401"`/`"403"` (whose error body echoes the request's
Authorization header, as some gateways do), `"malformed"` (200 with a body that is not
JSON), `"cut"` (read half the body, then close the connection: a cut-off upload),
`"slow"` (sleep before answering), `"drop"` (close the connection without a response).
`judge_text` replaces every judge verdict with a fixed reply (a judge that never
decides). Every request is logged with its time and the
status sent, and fine-tuning jobs created are counted, so tests can assert that a storm
was waited out and that a resumed run never created a second job.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass
class Fault:
    prefix: str
    kind: str  # "429" | "500" | "401" | "403" | "malformed" | "cut" | "slow" | "drop" | "lost"
    count: int
    retry_after: float | None = None
    seconds: float = 0.0
    method: str = ""  # "" matches every method


@dataclass
class Job:
    id: str
    body: dict[str, Any]
    created: float
    polls: int = 0
    status: str = "pending"
    cancelled: bool = False


@dataclass
class LoopbackState:
    latency: float = 0.0  # seconds added to every chat completion
    job_polls: int = 4  # retrieves until a job completes
    fail_job: str | None = None  # make jobs end in "error" with this message
    judge_text: str | None = None  # every judge prompt gets this reply instead of a verdict
    faults: list[Fault] = field(default_factory=list)
    log: list[tuple[float, str, str, int]] = field(
        default_factory=list
    )  # (t, method, path, status)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    jobs_created: int = 0
    chat_calls: int = 0
    auth_headers: set[str] = field(default_factory=set)
    arrivals: list[tuple[float, str, str]] = field(default_factory=list)  # (t, method, path)
    # a scripted judge: prompt text -> the first token's top log-probabilities ({token: logprob});
    # the reply is its likeliest token
    first_token_logprobs: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _matches(prefix: str, path: str) -> bool:
    """A route prefix; one ending in `$` must match the whole path."""
    return path == prefix[:-1] if prefix.endswith("$") else path.startswith(prefix)


def _answer_for(
    messages: list[dict[str, Any]], model: str = "", judge_text: str | None = None
) -> str:
    """A deterministic reply: a judge prompt gets a verdict (the longer answer wins, or
    `judge_text`), anything else an echo; a fine-tuned model (`loopback/...`) adds detail."""
    last = str(messages[-1].get("content", "")) if messages else ""
    if ("Verdict:" in last or "[[A]]" in last) and judge_text is not None:
        return judge_text
    if "Verdict:" in last or "[[A]]" in last:
        first = re.search(r"\[Answer A\]\s*(.*?)\s*\[End of Answer A\]", last, re.S)
        second = re.search(r"\[Answer B\]\s*(.*?)\s*\[End of Answer B\]", last, re.S)
        a = len(first.group(1)) if first else 0
        b = len(second.group(1)) if second else 0
        verdict = "A" if a > b else "B" if b > a else "tie"
        return f"Verdict: {verdict}\nReason: the longer answer is more complete."
    words = last.split()
    text = "Improved: " + " ".join(words[:12]) if words else "Hello."
    return text + " with more helpful detail" if model.startswith("loopback/") else text


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    # -------------------------------------------------------------- plumbing
    @property
    def st(self) -> LoopbackState:
        return self.server.state

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, obj: Any = None, headers: dict[str, str] | None = None) -> None:
        if getattr(self, "_lost", False):  # the work was done; the answer is lost
            self._lost = False
            status, obj, headers = 500, {"error": {"message": "injected lost response"}}, {}
        self._send_raw(status, b"" if obj is None else json.dumps(obj).encode(), headers)

    def _send_raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        with self.st.lock:
            self.st.log.append((time.time(), self.command, urlparse(self.path).path, status))

    def _fault(self, path: str) -> bool:
        """Apply the first matching injected fault; True when the request was answered."""
        with self.st.lock:
            fault = next(
                (
                    f
                    for f in self.st.faults
                    if f.count and _matches(f.prefix, path) and f.method in ("", self.command)
                ),
                None,
            )
            if fault is not None:
                fault.count -= 1
        if fault is None:
            return False
        if fault.kind == "slow":
            time.sleep(fault.seconds)
            return False
        if fault.kind == "lost":
            self._lost = True
            return False
        if fault.kind in ("drop", "cut"):
            n = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(n if fault.kind == "drop" else n // 2)
            with self.st.lock:
                self.st.log.append((time.time(), self.command, path, 0))
            self.close_connection = True
            self.connection.shutdown(2)
            return True
        self._body()
        if fault.kind == "malformed":
            self._send_raw(200, b'{"id": "chat-1", "choices": [{"mess')
            return True
        status = int(fault.kind)
        headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
        message = f"injected {status}"
        if status in (401, 403):  # a gateway that echoes what it refused
            message += f": invalid credentials {self.headers.get('Authorization', '')!r}"
        self._send(status, {"error": {"message": message}}, headers)
        return True

    def _route(self) -> None:
        url = urlparse(self.path)
        path = url.path
        with self.st.lock:
            self.st.arrivals.append((time.time(), self.command, path))
        if path.startswith("/v1/"):  # the upload URL is presigned: no key goes there
            self.st.auth_headers.add(self.headers.get("Authorization", ""))
        if self._fault(path):
            return
        body = self._body()
        handler = self.server.routes(self.command, path)
        if handler is None:
            self._send(404, {"error": {"message": f"no route {self.command} {path}"}})
            return
        fn, args = handler
        fn(self, body, parse_qs(url.query), *args)

    do_GET = do_POST = do_PUT = do_DELETE = _route

    # -------------------------------------------------------------- chat
    def chat(self, body: bytes, _q: Any) -> None:
        req = json.loads(body)
        time.sleep(self.st.latency)
        with self.st.lock:
            self.st.chat_calls += 1
        text = _answer_for(req.get("messages", []), str(req.get("model", "")), self.st.judge_text)
        scripted = None
        if self.st.first_token_logprobs is not None:
            messages = req.get("messages") or [{}]
            scripted = self.st.first_token_logprobs(str(messages[-1].get("content", "")))
            text = max(scripted, key=scripted.get)
        max_tokens = int(req.get("max_tokens") or 64)
        tokens = text.split(" ")[:max_tokens]
        text = " ".join(tokens)
        choice: dict[str, Any] = {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": text},
        }
        k = (
            int(req.get("top_logprobs") or 0)
            if req.get("logprobs") is True
            else int(req.get("logprobs") or 0)
        )
        if k and scripted is not None:  # Together style, the scripted distribution
            choice["logprobs"] = {
                "tokens": [text],
                "token_logprobs": [scripted[text]],
                "top_logprobs": [dict(sorted(scripted.items(), key=lambda kv: -kv[1])[:k])],
            }
        elif k and req.get("logprobs") is True:  # OpenAI style
            choice["logprobs"] = {
                "content": [
                    {
                        "token": t,
                        "logprob": -0.1,
                        "top_logprobs": [{"token": t, "logprob": -0.1}]
                        + [{"token": f"alt{j}", "logprob": -1.0 - j} for j in range(k - 1)],
                    }
                    for t in tokens
                ]
            }
        elif k:
            toks = [t if i == 0 else " " + t for i, t in enumerate(tokens)]
            choice["logprobs"] = {
                "tokens": toks,
                "token_logprobs": [-0.1 * (i + 1) for i in range(len(toks))],
                "top_logprobs": [
                    {t: -0.1 * (i + 1), **{f"alt{j}": -1.0 - j for j in range(k - 1)}}
                    for i, t in enumerate(toks)
                ],
            }
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in req.get("messages", []))
        self._send(
            200,
            {
                "id": f"chat-{uuid.uuid4().hex[:8]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": req.get("model"),
                "prompt": [],
                "choices": [choice],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(tokens),
                    "total_tokens": prompt_tokens + len(tokens),
                },
            },
        )

    def models(self, _b: bytes, _q: Any) -> None:
        self._send(200, [{"id": "loopback/echo", "object": "model", "type": "chat"}])

    # -------------------------------------------------------------- files
    def file_start(self, body: bytes, _q: Any) -> None:
        fid = f"file-{uuid.uuid4().hex[:12]}"
        name = re.search(rb'name="file_name"\r\n\r\n([^\r]*)', body)
        with self.st.lock:
            self.st.files[fid] = {
                "id": fid,
                "filename": name.group(1).decode() if name else "data.jsonl",
                "content": None,
            }
        host = self.headers.get("Host")
        self._send(
            302, None, {"Location": f"http://{host}/upload/{fid}", "X-Together-File-Id": fid}
        )

    def file_put(self, body: bytes, _q: Any, fid: str) -> None:
        with self.st.lock:
            self.st.files[fid]["content"] = body
        self._send(200, {})

    def _file_json(self, fid: str) -> dict[str, Any]:
        f = self.st.files[fid]
        return {
            "id": fid,
            "object": "file",
            "bytes": len(f["content"] or b""),
            "created_at": int(time.time()),
            "filename": f["filename"],
            "FileType": "jsonl",
            "purpose": "fine-tune",
            "processing_status": "COMPLETED",
        }

    def file_preprocess(self, _b: bytes, _q: Any, fid: str) -> None:
        self._send(200, self._file_json(fid))

    def file_get(self, _b: bytes, _q: Any, fid: str) -> None:
        if fid not in self.st.files:
            self._send(404, {"error": {"message": f"no file {fid}"}})
            return
        self._send(200, self._file_json(fid))

    # -------------------------------------------------------------- fine-tuning
    def limits(self, _b: bytes, q: dict[str, list[str]]) -> None:
        self._send(
            200,
            {
                "model_name": q.get("model_name", [""])[0],
                "default_gradient_accumulation_steps": 1,
                "lora_training": {
                    "default_rank": 8,
                    "max_batch_size": 16,
                    "max_batch_size_dpo": 8,
                    "max_rank": 64,
                    "min_batch_size": 1,
                    "target_modules": ["q_proj", "v_proj"],
                },
                "full_training": {
                    "max_batch_size": 8,
                    "max_batch_size_dpo": 4,
                    "min_batch_size": 1,
                },
                "max_learning_rate": 1.0,
                "min_learning_rate": 1e-8,
                "max_num_checkpoints": 10,
                "max_num_epochs": 20,
                "max_num_evals": 10,
                "max_seq_length_sft": 8192,
                "max_seq_length_dpo": 8192,
                "min_max_seq_length": 128,
                "merge_output_lora": True,
                "supports_full_training": True,
                "supports_reasoning": False,
                "supports_tools": False,
                "supports_vision": False,
            },
        )

    def estimate(self, _b: bytes, _q: Any) -> None:
        self._send(
            200,
            {
                "estimation_available": True,
                "allowed_to_proceed": True,
                "estimated_total_price": 0.5,
            },
        )

    def _advance(self, job: Job) -> None:
        if job.cancelled or job.status in ("completed", "error", "cancelled"):
            return
        job.polls += 1
        if job.polls >= self.st.job_polls:
            job.status = "error" if self.st.fail_job else "completed"
        elif job.polls >= 1:
            job.status = "running"

    def _job_json(self, job: Job) -> dict[str, Any]:
        b = job.body
        name = (
            f"loopback/{b.get('model', 'm').split('/')[-1]}-{b.get('suffix') or 'ft'}-{job.id[-6:]}"
        )
        return {
            "id": job.id,
            "object": "fine-tune",
            "status": job.status,
            "model": b.get("model"),
            "training_file": b.get("training_file"),
            "suffix": b.get("suffix"),
            "n_epochs": b.get("n_epochs"),
            "learning_rate": b.get("learning_rate"),
            "training_type": b.get("training_type"),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(job.created)),
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            "model_output_name": name if job.status == "completed" else None,
            "adapter_output_name": None,
            "events": [],
        }

    def job_create(self, body: bytes, _q: Any) -> None:
        req = json.loads(body)
        with self.st.lock:
            self.st.jobs_created += 1
            job = Job(id=f"ft-{uuid.uuid4().hex[:12]}", body=req, created=time.time())
            self.st.jobs[job.id] = job
        self._send(200, self._job_json(job))

    def job_list(self, _b: bytes, _q: Any) -> None:
        with self.st.lock:
            data = [self._job_json(j) for j in self.st.jobs.values()]
        self._send(200, {"data": data})

    def job_get(self, _b: bytes, _q: Any, jid: str) -> None:
        job = self.st.jobs.get(jid)
        if job is None:
            self._send(404, {"error": {"message": f"no job {jid}"}})
            return
        with self.st.lock:
            self._advance(job)
        self._send(200, self._job_json(job))

    def _steps(self, job: Job) -> int:
        return max(0, min(job.polls, self.st.job_polls - 1)) * 2

    def job_events(self, _b: bytes, _q: Any, jid: str) -> None:
        job = self.st.jobs[jid]
        events = [{"type": "job_pending", "message": "Fine tune request created"}]
        events += [
            {
                "type": "checkpoint_save",
                "message": f"Training step {s}: loss {2.0 / s:.4f}",
                "step": s,
            }
            for s in range(1, self._steps(job) + 1)
        ]
        if job.status == "completed":
            events.append({"type": "job_complete", "message": "Job finished"})
        if job.status == "error":
            events.append({"type": "job_error", "message": self.st.fail_job, "level": "error"})
        if job.cancelled:
            events.append({"type": "cancel_requested", "message": "Cancel requested"})
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(job.created))
        self._send(
            200,
            {"data": [{"object": "fine-tune-event", "created_at": stamp, **e} for e in events]},
        )

    def job_metrics(self, _b: bytes, _q: Any, jid: str) -> None:
        job = self.st.jobs[jid]
        rows = [{"global_step": s, "train_loss": 2.0 / s} for s in range(1, self._steps(job) + 1)]
        self._send(200, {"metrics": rows})

    def job_cancel(self, _b: bytes, _q: Any, jid: str) -> None:
        job = self.st.jobs[jid]
        with self.st.lock:
            job.cancelled, job.status = True, "cancelled"
        self._send(200, self._job_json(job))


_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"/v1/chat/completions"), "chat"),
    ("GET", re.compile(r"/v1/models"), "models"),
    ("POST", re.compile(r"/v1/files"), "file_start"),
    ("PUT", re.compile(r"/upload/([\w.-]+)"), "file_put"),
    ("POST", re.compile(r"/v1/files/([\w.-]+)/preprocess"), "file_preprocess"),
    ("GET", re.compile(r"/v1/files/([\w.-]+)"), "file_get"),
    ("GET", re.compile(r"/v1/fine-tunes/models/limits"), "limits"),
    ("POST", re.compile(r"/v1/fine-tunes/estimate-price"), "estimate"),
    ("POST", re.compile(r"/v1/fine-tunes"), "job_create"),
    ("GET", re.compile(r"/v1/fine-tunes"), "job_list"),
    ("GET", re.compile(r"/v1/fine-tunes/([\w-]+)/events"), "job_events"),
    ("GET", re.compile(r"/v1/fine-tunes/([\w-]+)/metrics"), "job_metrics"),
    ("POST", re.compile(r"/v1/fine-tunes/([\w-]+)/cancel"), "job_cancel"),
    ("GET", re.compile(r"/v1/fine-tunes/([\w-]+)"), "job_get"),
]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: LoopbackState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (killed runner, timeout) is part of the tests, not an error."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def routes(self, method: str, path: str) -> tuple[Any, tuple[str, ...]] | None:
        for m, pattern, name in _ROUTES:
            match = pattern.fullmatch(path)
            if m == method and match:
                return getattr(_Handler, name), match.groups()
        return None


class Loopback:
    """A running server: `.url` for base_url, `.state` for counters and faults."""

    def __init__(self, **state: Any) -> None:
        self.state = LoopbackState(**state)
        self._server = _Server(self.state)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Loopback:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fault(
        self,
        prefix: str,
        kind: str,
        count: int = 1,
        *,
        retry_after: float | None = None,
        seconds: float = 0.0,
        method: str = "",
    ) -> None:
        with self.state.lock:
            self.state.faults.append(Fault(prefix, kind, count, retry_after, seconds, method))

    def arrived(self, prefix: str = "/v1/") -> list[float]:
        """Arrival times of the requests whose path starts with `prefix`."""
        with self.state.lock:
            return [t for t, _m, p in self.state.arrivals if p.startswith(prefix)]

    def statuses(self, prefix: str) -> list[tuple[float, int]]:
        with self.state.lock:
            return [(t, s) for t, _m, p, s in self.state.log if p.startswith(prefix)]


@contextmanager
def loopback(**state: Any) -> Iterator[Loopback]:
    server = Loopback(**state).start()
    try:
        yield server
    finally:
        server.stop()
