"""The plumbing of bench/bench_gpu.py: the check registry, each check's time budget and
printed lines, the models the checks share, and labdeck runs started as users start them.

Kept apart from the checks so each check module reads as what it measures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GiB = 2**30


def ensure_labdeck_importable() -> None:
    """`import labdeck.backend` from this tree, installed or not.

    On the GPU machine the tree arrives as a plain copy without an install: `labdeck` is
    an implicit namespace over backend/ and tui/ (setup.py), so a folder holding two
    links named labdeck/backend and labdeck/tui serves, for this process and the runner
    processes it starts (PYTHONPATH).
    """
    try:
        import labdeck.backend

        if Path(labdeck.backend.__file__).resolve().parent == REPO / "backend":
            return
    except ImportError:
        pass
    shim = Path(tempfile.mkdtemp(prefix="labdeck-shim-")) / "labdeck"
    shim.mkdir()
    (shim / "backend").symlink_to(REPO / "backend")
    (shim / "tui").symlink_to(REPO / "tui")
    sys.path.insert(0, str(shim.parent))
    for name in [m for m in sys.modules if m == "labdeck" or m.startswith("labdeck.")]:
        del sys.modules[name]
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(shim.parent), os.environ.get("PYTHONPATH", "")) if p
    )


# --------------------------------------------------------------------------- lines and checks


@dataclass
class Line:
    """One printed figure: `name: value (goal …)`, kept for docs/gpu.md."""

    name: str
    value: str
    goal: str = ""
    status: str = "value"  # value | skipped | error

    def text(self) -> str:
        return f"{self.name}: {self.value}" + (f" (goal {self.goal})" if self.goal else "")


class Skip(Exception):
    """A check (or one of its figures) cannot run here; the message says why."""


@dataclass
class Env:
    """What every check receives: the device, a scratch folder, its deadline, the printer."""

    cuda: bool
    device: str  # "cuda:0" or "cpu"
    device_name: str
    tmp: Path
    screenshots: Path
    lines: list[Line] = field(default_factory=list)
    deadline: float = 0.0  # time.monotonic() by which the check in hand should end
    shared: dict[str, Any] = field(default_factory=dict)  # models built once for all checks

    def emit(self, name: str, value: Any, goal: str = "", status: str = "value") -> None:
        line = Line(name, str(value), goal, status)
        self.lines.append(line)
        print(line.text(), flush=True)

    def left(self) -> float:
        """Seconds left of the check in hand's budget (never below 0)."""
        return max(0.0, self.deadline - time.monotonic())

    def once(self, key: str, build: Callable[[], Any]) -> Any:
        """`build()` the first time any check asks for `key`, the same object afterwards."""
        if key not in self.shared:
            self.shared[key] = build()
        return self.shared[key]


@dataclass(frozen=True)
class Check:
    name: str
    fn: Callable[[Env], None]
    share: float  # of the whole budget
    cuda: bool  # True: skipped without a CUDA device; False: runs anywhere (a CPU stand-in)
    what: str


CHECKS: dict[str, Check] = {}


def check(name: str, share: float, *, cuda: bool = True) -> Callable:
    """Register a check; its docstring's first line says what it measures."""

    def register(fn: Callable[[Env], None]) -> Callable[[Env], None]:
        what = (fn.__doc__ or name).strip().splitlines()[0]
        CHECKS[name] = Check(name, fn, share, cuda, what)
        return fn

    return register


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# --------------------------------------------------------------------------- models

# A Llama-style model of about 1.1 B parameters (Llama-3.2-1B's shape with the embedded
# model's tokenizer); full multi-head attention (no grouped keys) so the key/value cache,
# and with it the memory each generated row needs, is large enough for the batch policy
# to meet the device's limit within a short generation.
LLAMA_1B: dict[str, Any] = dict(
    hidden_size=2048,
    intermediate_size=8192,
    num_hidden_layers=16,
    num_attention_heads=32,
    num_key_value_heads=32,
    max_position_embeddings=4096,
    tie_word_embeddings=True,
)
TINY: dict[str, Any] = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=1024,
    tie_word_embeddings=True,
)


def embedded_files() -> Path:
    """A folder with the embedded model's config and tokenizer: the full cache where it
    exists, else the carried copy (LABDECK_CACHE/arch/, see scripts/gpu-carry.sh)."""
    from labdeck.backend.models import EMBEDDED_ALIAS, _is_complete, cache_root, embedded_dir

    if _is_complete(embedded_dir()):
        return embedded_dir()
    carried = cache_root() / "arch" / EMBEDDED_ALIAS
    if (carried / "config.json").is_file() and (carried / "tokenizer_config.json").is_file():
        return carried
    raise Skip(
        f"no embedded model files: neither {embedded_dir()} nor {carried} "
        "(run scripts/gpu-carry.sh and carry .cache-carry with LABDECK_CACHE pointing at it)"
    )


def embedded_model(env: Env) -> tuple[str, str]:
    """(model spec, label) of the embedded model: the real one where its weights are cached,
    else its architecture and tokenizer with random weights (saved once in env.tmp)."""

    def build() -> tuple[str, str]:
        from labdeck.backend.models import EMBEDDED_ALIAS, _is_complete, embedded_dir

        if _is_complete(embedded_dir()):
            return EMBEDDED_ALIAS, f"{EMBEDDED_ALIAS} (real weights)"
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(embedded_files(), local_files_only=True)
        folder = save_random(env, "smollm2-arch", config, "float32")
        return str(folder), f"{EMBEDDED_ALIAS} architecture, random weights (float32)"

    return env.once("embedded", build)


def save_random(env: Env, name: str, config: Any, dtype: str) -> Path:
    """A random model from `config` saved like a Hub checkpoint with the embedded tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = env.tmp / name
    if (out / "config.json").is_file():
        return out
    tok = AutoTokenizer.from_pretrained(embedded_files(), local_files_only=True)
    torch.manual_seed(0)
    with torch.device(env.device):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    del model
    if env.cuda:
        torch.cuda.empty_cache()
    return out


def llama_config(tok_dir: Path, shape: dict[str, Any]) -> Any:
    from transformers import AutoTokenizer, LlamaConfig

    tok = AutoTokenizer.from_pretrained(tok_dir, local_files_only=True)
    return LlamaConfig(
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        **shape,
    )


def random_llama(env: Env) -> tuple[Path, str]:
    """(folder, label) of the random ~1.1 B Llama-style model in bfloat16 (built once)."""

    def build() -> tuple[Path, str]:
        config = llama_config(embedded_files(), LLAMA_1B)
        folder = save_random(env, "llama-1b-random", config, "bfloat16")
        n = params_of(config)
        return folder, f"random Llama-style {n / 1e9:.2f} B, bfloat16"

    return env.once("llama", build)


def tiny_llama(env: Env) -> tuple[Path, str]:
    """A tiny random Llama with the embedded tokenizer: the CPU stand-in's model."""

    def build() -> tuple[Path, str]:
        folder = save_random(env, "llama-tiny", llama_config(embedded_files(), TINY), "float32")
        return folder, "tiny random Llama (CPU stand-in)"

    return env.once("tiny", build)


def params_of(config: Any) -> int:
    h, f, n, v = (
        config.hidden_size,
        config.intermediate_size,
        config.num_hidden_layers,
        config.vocab_size,
    )
    kv = config.num_key_value_heads * (h // config.num_attention_heads)
    return v * h + n * (2 * h * h + 2 * h * kv + 3 * h * f)


# --------------------------------------------------------------------------- labdeck runs


def labdeck_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "labdeck.backend.cli", *args]


def start_run(
    results: Path,
    sets: dict[str, Any],
    *,
    kind: str = "",
    title: str = "",
    preset: Path | None = None,
) -> subprocess.Popen:
    """`labdeck run [PRESET | --kind KIND] --set k=v ...` in its own process, as a user starts one."""
    argv = ["run", *([str(preset)] if preset else ["--kind", kind])]
    argv += [*(["--title", title] if title else []), "--quiet", "--results", str(results)]
    for key, value in sets.items():
        argv += ["--set", f"{key}={json.dumps(value)}"]
    return subprocess.Popen(
        labdeck_cmd(*argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(proc: subprocess.Popen, timeout: float, what: str) -> str:
    """Wait for a labdeck command; its output, or an error naming its last line."""
    try:
        out, _ = proc.communicate(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise RuntimeError(f"{what}: still running after {timeout:.0f} s; stopped") from None
    if proc.returncode != 0:
        last = [ln for ln in out.splitlines() if ln.strip()][-1:] or [f"exit {proc.returncode}"]
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {last[0][:200]}")
    return out


def run_dirs(results: Path) -> list[Path]:
    return sorted(p for p in results.iterdir() if (p / "config.json").is_file())


def events(run_dir: Path, kind: str | None = None) -> list[dict[str, Any]]:
    path = run_dir / "events.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being written
        if kind is None or ev.get("type") == kind:
            out.append(ev)
    return out


def records(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "records.jsonl"
    if not path.is_file():
        return []
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
