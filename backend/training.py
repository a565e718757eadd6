"""The one LoRA trainer: chat JSONL in, peft adapters and resumable checkpoints out.

Every kind that fine-tunes a model locally (`em`, `feedback`) trains through this module,
so masks, checkpoints and resume behave the same everywhere.

API (importing this module does not import torch; the functions that need it do so):

    read_chat_jsonl(path, limit=None) -> list[Conversation]
        `{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}` per
        line; a bad line is a UserError naming file and line number.
    LoraSpec(rank, alpha, dropout, target_modules, use_rslora)
    TrainSpec(learning_rate, lr_scheduler, warmup_steps, epochs, max_steps,
              effective_batch_size, micro_batch_size, max_seq_length, weight_decay,
              max_grad_norm, seed, shuffle, loss_on, gradient_checkpointing)
        loss_on = "assistant" (every assistant message) or "last_assistant" (only the
        last one, as a feedback fine-tune wants).
    encode_conversation(tok, messages, max_len, loss_on) -> Encoded(input_ids, labels)
    steps_for(n_examples, spec) -> int              optimizer steps of the whole run
    checkpoint_plan(total, schedule=(), every=0) -> list[int]
        the steps to save (0 allowed = before any step); `total` is always saved as `final`.
    adaptive_controller(spec, device, on_change=None, policy=None) -> BatchController
    LoraTrainer(model, tok, conversations, spec, lora, *, save_steps=(), save_every=0,
                controller=None, record_prefix="train", checkpoint_events=True)
        (controller None: fixed micro-batch, no probe; checkpoint_events False: the caller
        emits its own `checkpoint` events, e.g. after evaluating each one)
        .model                     the peft model (the persona, if any, merged beforehand)
        .total_steps
        .run(hooks) -> TrainResult
        .load_adapter_weights(folder)   put a checkpoint's adapter into .model (evaluation)
    checkpoint_dirs(root) -> dict[int, Path]  saved checkpoints by step (final included)

`hooks` is anything with RunContext's methods (`stage_checkpoint`, `checkpoint`,
`metric`, `batch`, `progress`, `check_stop`, `is_done`, `record`, `info`).

Why it is shaped this way:

- The loss is the sum of token losses over the whole effective batch divided by its
  assistant-token count, whatever the micro-batch: gradient accumulation over any split
  gives the same update, so the adaptive micro-batch (backend/batching.py) changes speed,
  never the result. Each micro-batch's gradients are computed with `torch.autograd.grad`
  and added to `.grad` only when the micro-batch finished, so an out-of-memory error
  mid-backward leaves no half gradient behind and the controller retries it smaller.
- A checkpoint folder holds `adapter/` (peft), `optimizer.pt`, `scheduler.pt`, `rng.pt`
  (python, numpy, torch, cuda generators) and `trainer_state.json` (step, epoch, offset,
  the epoch's data permutation, micro-batch size, loss history). It is written to a
  staging folder and renamed, so a checkpoint on disk is always whole. Resume continues
  from the newest one and, on a CPU, ends with the same tensors as an uninterrupted run.
- A stop request saves a `resume` checkpoint at the current step before stopping, so a
  clean stop loses nothing; a SIGKILL loses at most the steps since the last checkpoint.
- Under torchrun (`[launcher] processes = N`) every rank takes its share of each
  step's examples (`distributed.shard`), divides its token losses by its own
  assistant-token count and averages the gradients weighted by that count: the update
  is the one-process update up to float summation order (a rank with no examples weighs
  0). Every rank saves checkpoints; the runner keeps only rank 0's.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from . import distributed
from .errors import UserError
from .jsonio import canonical_json, read_json, write_json_atomic
from .kinds.base import StopRequested
from .ledger import unit_key

Conversation = list[dict[str, str]]
ROLES = ("system", "user", "assistant")
STATE_FILE = "trainer_state.json"
ADAPTER_DIR = "adapter"
FINAL = "final"
RESUME = "resume"
CHECKPOINT_PREFIX = "checkpoint-"
LossOn = Literal["assistant", "last_assistant"]
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts")


# =========================================================================== data


def _line_error(path: Path, lineno: int, what: str) -> UserError:
    return UserError(f"{path}:{lineno}: {what}")


def parse_chat_line(line: str, path: Path, lineno: int) -> Conversation:
    """One JSONL line -> its messages, or a UserError naming file, line and problem."""
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise _line_error(path, lineno, f"not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
        raise _line_error(path, lineno, 'expected an object with a "messages" list')
    messages = obj["messages"]
    if not messages:
        raise _line_error(path, lineno, '"messages" is empty')
    out: Conversation = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise _line_error(path, lineno, f"message {i}: role must be one of {', '.join(ROLES)}")
        if not isinstance(m.get("content"), str):
            raise _line_error(path, lineno, f"message {i}: content must be a string")
        out.append({"role": m["role"], "content": m["content"]})
    if not any(m["role"] == "assistant" for m in out):
        raise _line_error(path, lineno, "no assistant message (nothing to train on)")
    return out


def read_chat_jsonl(path: Path | str, limit: int | None = None) -> list[Conversation]:
    """The conversations of a chat JSONL file (blank lines skipped), first `limit` only."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: dataset file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read dataset ({exc})") from None
    out: list[Conversation] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        out.append(parse_chat_line(line, path, lineno))
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise UserError(f"{path}: dataset has no conversations")
    return out


def conversations_digest(conversations: Sequence[Conversation]) -> str:
    """sha256 of the training data as it will be used (recorded; resume refuses a change)."""
    return hashlib.sha256(canonical_json(list(conversations)).encode()).hexdigest()


# =========================================================================== specs


class LoraSpec(BaseModel):
    """The LoRA adapter's shape."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rank: int = Field(32, ge=1, le=1024, description="LoRA rank r")
    alpha: float = Field(
        64.0, gt=0, le=4096, description="LoRA alpha (scale alpha/r, or alpha/sqrt(r) with rsLoRA)"
    )
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the LoRA input")
    target_modules: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TARGETS),
        min_length=1,
        description="module names that get adapters ('all-linear' for every linear layer)",
    )
    use_rslora: bool = Field(True, description="rank-stabilised scaling alpha/sqrt(r)")
    layers: list[int] = Field(
        default_factory=list,
        description="decoder layers that get adapters (peft layers_to_transform; empty: all)",
    )

    def record(self) -> dict[str, Any]:
        """The spec as checkpoints record it; `layers` only when set, so checkpoints written
        before it existed still match on resume."""
        return self.model_dump(exclude=set() if self.layers else {"layers"})

    def peft_config(self) -> Any:
        from peft import LoraConfig

        targets: Any = (
            "all-linear" if self.target_modules == ["all-linear"] else list(self.target_modules)
        )
        return LoraConfig(
            r=self.rank,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=targets,
            use_rslora=self.use_rslora,
            layers_to_transform=list(self.layers) or None,
            bias="none",
            task_type="CAUSAL_LM",
        )


class TrainSpec(BaseModel):
    """Optimisation settings; together with the data they fix the result."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    learning_rate: float = Field(1e-5, gt=0, le=1.0, description="peak learning rate (AdamW)")
    lr_scheduler: Literal[
        "linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts"
    ] = Field("linear", description="learning-rate schedule after warm-up")
    warmup_steps: int = Field(5, ge=0, description="linear warm-up steps")
    epochs: int = Field(1, ge=1, le=1000, description="passes over the data")
    max_steps: int = Field(
        0, ge=0, description="stop after this many optimizer steps (0: epochs decide)"
    )
    effective_batch_size: int = Field(16, ge=1, le=4096, description="examples per optimizer step")
    micro_batch_size: int = Field(
        2, ge=1, le=4096, description="examples per forward pass at the start (adapts to memory)"
    )
    max_seq_length: int = Field(2048, ge=16, description="tokens kept per example (from the start)")
    weight_decay: float = Field(0.01, ge=0.0, le=1.0, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, ge=0.0, description="gradient clipping norm (0: none)")
    seed: int = Field(0, ge=0, description="seed for LoRA init, dropout and data order")
    shuffle: bool = Field(True, description="shuffle the data every epoch (seeded)")
    loss_on: LossOn = Field(
        "assistant", description="train on every assistant message or only the last"
    )
    gradient_checkpointing: bool = Field(False, description="recompute activations to save memory")


def steps_per_epoch(n_examples: int, spec: TrainSpec) -> int:
    return max(1, math.ceil(n_examples / spec.effective_batch_size))


def steps_for(n_examples: int, spec: TrainSpec) -> int:
    total = spec.epochs * steps_per_epoch(n_examples, spec)
    return min(total, spec.max_steps) if spec.max_steps else total


def checkpoint_plan(total: int, schedule: Sequence[int] = (), every: int = 0) -> list[int]:
    """Steps to save, ascending and within the run; the last step is always included."""
    steps = {s for s in schedule if 0 <= s <= total}
    if every:
        steps.update(range(every, total + 1, every))
    steps.add(total)
    return sorted(steps)


def checkpoint_name(step: int, total: int) -> str:
    return FINAL if step == total else f"{CHECKPOINT_PREFIX}{step}"


def checkpoint_dirs(root: Path) -> dict[int, Path]:
    """Complete checkpoints under `root` by step (`final` under its step; `resume` left out)."""
    out: dict[int, Path] = {}
    for d in Path(root).glob("*"):
        if not d.is_dir() or d.name.startswith(".") or d.name == RESUME:
            continue
        if (d / STATE_FILE).is_file():
            out[int(read_json(d / STATE_FILE)["step"])] = d
    return dict(sorted(out.items()))


# =========================================================================== encoding


@dataclass(frozen=True)
class Encoded:
    """One conversation as token ids, with -100 on every token the loss ignores."""

    input_ids: list[int]
    labels: list[int]

    @property
    def trained_tokens(self) -> int:
        return sum(1 for t in self.labels if t != -100)


def _render(tok: Any, messages: Conversation, add_generation_prompt: bool) -> str:
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
    # No chat template: a plain "role: content" transcript with the same prefix property.
    text = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
    return text + ("assistant: " if add_generation_prompt else "")


def assistant_spans(
    tok: Any, messages: Conversation, loss_on: LossOn
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character spans the loss covers.

    An assistant turn's span runs from the end of the prompt that precedes it (the
    template's generation prompt) to the end of the rendering that includes it, so it
    covers the answer and the template's end-of-turn marker: the model learns to stop.
    """
    full = _render(tok, messages, add_generation_prompt=False)
    spans: list[tuple[int, int]] = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = _render(tok, messages[:i], add_generation_prompt=True) if i else ""
        upto = _render(tok, messages[: i + 1], add_generation_prompt=False)
        if not full.startswith(upto) or not upto.startswith(before):
            raise UserError(
                "the tokenizer's chat template does not render conversations prefix by prefix; "
                "assistant tokens cannot be located for the loss mask"
            )
        spans.append((len(before), len(upto)))
    if loss_on == "last_assistant":
        spans = spans[-1:]
    return full, spans


def encode_conversation(tok: Any, messages: Conversation, max_len: int, loss_on: LossOn) -> Encoded:
    """Token ids and labels: a token is trained when its first character lies in a span."""
    text, spans = assistant_spans(tok, messages, loss_on)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])[:max_len]
    labels = []
    for tid, (start, end) in zip(ids, enc["offset_mapping"], strict=False):
        inside = end > start and any(a <= start < b for a, b in spans)
        labels.append(tid if inside else -100)
    return Encoded(ids, labels)


# =========================================================================== hooks


class TrainHooks(Protocol):
    """What the trainer reports through; `RunContext` provides all of it."""

    def stage_checkpoint(self, name: str) -> Any: ...
    def checkpoint(
        self, step: int | str, path: Path, metrics: dict[str, Any] | None = None
    ) -> None: ...
    def metric(self, name: str, value: float | None, **where: Any) -> None: ...
    def batch(self, size: int, reason: str, **extra: Any) -> None: ...
    def progress(self, done: int, total: int | None = None, **extra: Any) -> None: ...
    def check_stop(self) -> None: ...
    def should_stop(self) -> bool: ...
    def is_done(self, key: str) -> bool: ...
    def record(self, key: str, record: dict[str, Any]) -> None: ...
    def info(self, message: str) -> None: ...

    @property
    def checkpoints_dir(self) -> Path: ...


@dataclass
class TrainResult:
    total_steps: int
    losses: list[dict[str, Any]] = field(default_factory=list)  # one per step: step, loss, lr, ...
    checkpoints: dict[int, Path] = field(default_factory=dict)
    resumed_from: int | None = None
    micro_batch_sizes: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def final_loss(self) -> float | None:
        return self.losses[-1]["loss"] if self.losses else None


# =========================================================================== RNG


def rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    out: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# =========================================================================== trainer


def peak_memory_mb() -> float:
    """Peak CUDA memory allocated by this process, or its resident memory on a CPU."""
    import torch

    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    import psutil

    return round(psutil.Process().memory_info().rss / 2**20, 1)


def adaptive_controller(
    spec: TrainSpec, device: str, on_change: Any = None, policy: Any = None
) -> Any:
    """A micro-batch controller that follows memory on `device`, bounded by the effective batch."""
    from . import gpu
    from .batching import BatchController

    return BatchController(
        min(spec.micro_batch_size, spec.effective_batch_size),
        spec.effective_batch_size,
        **gpu.batch_readings(device),
        on_change=on_change,
        policy=policy,
    )


def _seed_everything(seed: int) -> None:
    from .seeding import set_all_seeds

    set_all_seeds(seed)


class LoraTrainer:
    """Trains one LoRA adapter on chat conversations (see the module docstring)."""

    def __init__(
        self,
        model: Any,
        tok: Any,
        conversations: Sequence[Conversation],
        spec: TrainSpec,
        lora: LoraSpec,
        *,
        save_steps: Sequence[int] = (),
        save_every: int = 0,
        controller: Any = None,
        record_prefix: str = "train",
        checkpoint_events: bool = True,
    ) -> None:
        import torch
        from peft import PeftModel, get_peft_model

        from .batching import BatchController

        self.spec, self.lora, self.tok = spec, lora, tok
        self.record_prefix = record_prefix
        self.conversations = list(conversations)
        self.encoded = [
            encode_conversation(tok, c, spec.max_seq_length, spec.loss_on)
            for c in self.conversations
        ]
        empty = [i for i, e in enumerate(self.encoded) if e.trained_tokens == 0]
        if empty:
            raise UserError(
                f"example {empty[0]}: no assistant token within max_seq_length={spec.max_seq_length}"
            )
        self.total_steps = steps_for(len(self.encoded), spec)
        self.save_steps = checkpoint_plan(self.total_steps, save_steps, save_every)
        self.checkpoint_events = checkpoint_events
        self.data_digest = conversations_digest(self.conversations)
        _seed_everything(spec.seed)  # LoRA init depends on it
        if isinstance(model, PeftModel):
            raise UserError("the model already carries a peft adapter; merge it before training")
        if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
            from peft import prepare_model_for_kbit_training

            # QLoRA: norms in float32 and input gradients on, as peft recommends
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        if spec.gradient_checkpointing:  # non-reentrant: works with torch.autograd.grad
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
            model.enable_input_require_grads()
        self.model = get_peft_model(model, lora.peft_config())
        self.model.train()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.params, lr=spec.learning_rate, weight_decay=spec.weight_decay
        )
        from transformers import get_scheduler

        self.scheduler = get_scheduler(
            spec.lr_scheduler,
            self.optimizer,
            num_warmup_steps=spec.warmup_steps,
            num_training_steps=self.total_steps,
        )
        # The caller's controller (with a memory probe and batch events), else a fixed one.
        self.controller = controller or BatchController(
            min(spec.micro_batch_size, spec.effective_batch_size), spec.effective_batch_size
        )
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.device = next(self.model.parameters()).device

    # ------------------------------------------------------------------ data order
    def permutation(self, epoch: int) -> list[int]:
        import torch

        n = len(self.encoded)
        if not self.spec.shuffle:
            return list(range(n))
        g = torch.Generator().manual_seed(self.spec.seed * 100_003 + epoch)
        return torch.randperm(n, generator=g).tolist()

    def step_indices(self, step: int) -> tuple[int, int, list[int]]:
        """(epoch, offset in epoch, example indices) of optimizer step `step` (0-based)."""
        spe = steps_per_epoch(len(self.encoded), self.spec)
        epoch, within = divmod(step, spe)
        offset = within * self.spec.effective_batch_size
        perm = self.permutation(epoch)
        return epoch, offset, perm[offset : offset + self.spec.effective_batch_size]

    # ------------------------------------------------------------------ one step
    def _collate(self, items: list[Encoded]) -> tuple[Any, Any, Any]:
        import torch

        width = max(len(e.input_ids) for e in items)
        ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(items), width), -100, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for i, e in enumerate(items):  # right padding: positions stay those of the unpadded text
            n = len(e.input_ids)
            ids[i, :n] = torch.tensor(e.input_ids)
            labels[i, :n] = torch.tensor(e.labels)
            mask[i, :n] = 1
        return ids.to(self.device), mask.to(self.device), labels.to(self.device)

    def _micro(self, items: list[Encoded], denom: int) -> tuple[list[Any], float, int]:
        """Gradients of one micro-batch's share of the step loss (not yet accumulated)."""
        import torch
        import torch.nn.functional as F

        ids, mask, labels = self._collate(items)
        logits = self.model(input_ids=ids, attention_mask=mask).logits
        shift_logits = logits[:, :-1, :].float()
        shift_labels = labels[:, 1:]
        loss_sum = F.cross_entropy(
            shift_logits.reshape(-1, shift_logits.shape[-1]),
            shift_labels.reshape(-1),
            ignore_index=-100,
            reduction="sum",
        )
        grads = torch.autograd.grad(loss_sum / denom, self.params, allow_unused=True)
        return list(grads), float(loss_sum.detach()), int(mask.sum())

    def _average_gradients(self, weight: int) -> None:
        """Every rank's `.grad` becomes the token-weighted mean over ranks, i.e. the
        gradient of the whole step's loss; a rank without examples adds zeros, weight 0."""
        import torch

        for p in self.params:
            if p.grad is None:  # same tensor list on every rank, or the collectives hang
                p.grad = torch.zeros_like(p)
        distributed.all_reduce_mean_([p.grad for p in self.params], weight=weight)

    def train_step(self, step: int) -> dict[str, Any]:
        """One optimizer step over the effective batch, in adaptive micro-batches."""
        import torch

        epoch, offset, idx = self.step_indices(step)
        # data-parallel: this rank's share of the step (all of it in a single process)
        items = [self.encoded[i] for i in idx[distributed.shard(len(idx))]]
        denom = sum(e.trained_tokens for e in items)
        t0 = time.perf_counter()
        loss_total, tokens, sizes = 0.0, 0, []
        batches = self.controller.iter_batches(items, lambda chunk: self._micro(chunk, denom))
        for batch in batches if items else ():
            grads, loss_sum, n_tok = batch.result
            for p, g in zip(self.params, grads, strict=True):
                if g is None:
                    continue
                if p.grad is None:
                    p.grad = g.detach().clone()
                else:
                    p.grad.add_(g)
            loss_total += loss_sum
            tokens += n_tok
            sizes.append(batch.size)
        loss = loss_total / denom if denom else 0.0
        if distributed.is_distributed():  # the whole step's gradients and numbers
            self._average_gradients(denom)
            loss = distributed.reduce_mean(loss, weight=denom)
            tokens = round(distributed.reduce_mean(tokens) * distributed.world_size())
            denom = round(distributed.reduce_mean(denom) * distributed.world_size())
        if self.spec.max_grad_norm > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.spec.max_grad_norm))
        else:
            grad_norm = float(
                torch.linalg.vector_norm(
                    torch.stack([p.grad.norm() for p in self.params if p.grad is not None])
                )
            )
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - t0
        return {
            "step": step + 1,
            "epoch": epoch,
            "offset": offset,
            "loss": loss,
            "lr": lr,
            "grad_norm": grad_norm,
            "tokens": tokens,
            "trained_tokens": denom,
            "tokens_per_s": tokens / seconds if seconds > 0 else 0.0,
            "micro_batch": max(sizes, default=self.controller.size),
            "seconds": seconds,
        }

    # ------------------------------------------------------------------ checkpoints
    def _state(self, step: int, losses: list[dict[str, Any]]) -> dict[str, Any]:
        epoch, offset, _ = self.step_indices(step) if step < self.total_steps else (None, None, [])
        return {
            "step": step,
            "total_steps": self.total_steps,
            "epoch": epoch,
            "offset": offset,
            "permutation": self.permutation(epoch) if epoch is not None else None,
            "micro_batch": self.controller.size,
            "data_sha256": self.data_digest,
            "train_spec": self.spec.model_dump(),
            "lora": self.lora.record(),
            "losses": losses,
        }

    def save(self, folder: Path, step: int, losses: list[dict[str, Any]]) -> None:
        import torch

        self.model.save_pretrained(folder / ADAPTER_DIR)
        torch.save(self.optimizer.state_dict(), folder / "optimizer.pt")
        torch.save(self.scheduler.state_dict(), folder / "scheduler.pt")
        torch.save(rng_state(), folder / "rng.pt")
        write_json_atomic(folder / STATE_FILE, self._state(step, losses))

    def load_adapter_weights(self, folder: Path) -> None:
        """Put a saved checkpoint's adapter weights into `self.model` (same shape)."""
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        folder = Path(folder)
        adapter = folder / ADAPTER_DIR if (folder / ADAPTER_DIR).is_dir() else folder
        weights = load_file(str(adapter / "adapter_model.safetensors"), device=str(self.device))
        result = set_peft_model_state_dict(self.model, weights)
        unexpected = getattr(result, "unexpected_keys", None)
        if unexpected:
            raise RuntimeError(f"{adapter}: adapter does not fit the model ({unexpected[:2]})")

    def restore(self, folder: Path) -> tuple[int, list[dict[str, Any]]]:
        import torch

        state = read_json(folder / STATE_FILE)
        if state["data_sha256"] != self.data_digest:
            raise UserError(
                f"{folder}: checkpoint was trained on other data (sha256 {state['data_sha256'][:12]}…, "
                f"now {self.data_digest[:12]}…); cannot resume"
            )
        if state["train_spec"] != self.spec.model_dump() or state["lora"] != self.lora.record():
            raise UserError(f"{folder}: checkpoint was trained with other settings; cannot resume")
        self.load_adapter_weights(folder)
        self.optimizer.load_state_dict(
            torch.load(folder / "optimizer.pt", map_location=self.device, weights_only=True)
        )
        self.scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
        set_rng_state(torch.load(folder / "rng.pt", weights_only=False))
        self.controller.size = min(int(state["micro_batch"]), self.controller.maximum)
        return int(state["step"]), list(state["losses"])

    def latest(self, root: Path) -> Path | None:
        """The checkpoint to resume from: the highest step, a `resume` one included."""
        best: tuple[int, Path] | None = None
        for d in Path(root).glob("*"):
            if d.is_dir() and not d.name.startswith(".") and (d / STATE_FILE).is_file():
                step = int(read_json(d / STATE_FILE)["step"])
                if best is None or step > best[0] or (step == best[0] and d.name != RESUME):
                    best = (step, d)
        return best[1] if best else None

    def _save_named(
        self, hooks: TrainHooks, name: str, step: int, losses: list[dict[str, Any]]
    ) -> Path:
        with hooks.stage_checkpoint(name) as staging:
            self.save(staging, step, losses)
        return hooks.checkpoints_dir / name

    def _record_segment(self, hooks: TrainHooks, step: int, losses: list[dict[str, Any]]) -> None:
        key = unit_key(self.record_prefix, step)
        if hooks.is_done(key):
            return
        previous = max((s for s in self.save_steps if s < step), default=-1)
        segment = [r for r in losses if previous < r["step"] <= step]
        hooks.record(
            key,
            {
                "unit": "train_segment",
                "step": step,
                "checkpoint": checkpoint_name(step, self.total_steps),
                "loss": segment[-1]["loss"] if segment else None,
                "losses": [round(r["loss"], 6) for r in segment],
                "micro_batch": max(
                    (r["micro_batch"] for r in segment), default=self.controller.size
                ),
                "tokens_per_s": (
                    sum(r["tokens"] for r in segment) / sum(r["seconds"] for r in segment)
                    if segment
                    else None
                ),
            },
        )

    # ------------------------------------------------------------------ the loop
    def run(self, hooks: TrainHooks) -> TrainResult:
        root = Path(hooks.checkpoints_dir)
        result = TrainResult(self.total_steps)
        t_start = time.perf_counter()
        step, losses = 0, []
        latest = self.latest(root)
        if latest is not None:
            step, losses = self.restore(latest)
            result.resumed_from = step
            hooks.info(f"resuming training from {latest.name} (step {step}/{self.total_steps})")
        hooks.progress(step, self.total_steps)
        if (
            step == 0
            and 0 in self.save_steps
            and not (root / checkpoint_name(0, self.total_steps)).is_dir()
        ):
            path = self._save_named(hooks, checkpoint_name(0, self.total_steps), 0, losses)
            if self.checkpoint_events:
                hooks.checkpoint(0, path, {})
        if 0 in self.save_steps:
            self._record_segment(hooks, 0, losses)
        while step < self.total_steps:
            if distributed.any_rank(hooks.should_stop()):  # every rank stops at this step
                self._save_named(hooks, RESUME, step, losses)
                hooks.check_stop()
                raise StopRequested()
            row = self.train_step(step)
            step = row["step"]
            losses.append(
                {
                    k: row[k]
                    for k in ("step", "loss", "lr", "grad_norm", "tokens", "micro_batch", "seconds")
                }
            )
            result.micro_batch_sizes.append(row["micro_batch"])
            for name in ("loss", "lr", "grad_norm", "tokens_per_s"):
                hooks.metric(name, row[name], step=step)
            hooks.metric("micro_batch", row["micro_batch"], step=step)
            hooks.metric("peak_memory_mb", peak_memory_mb(), step=step)
            hooks.progress(step, self.total_steps)
            if step in self.save_steps:
                name = checkpoint_name(step, self.total_steps)
                path = self._save_named(hooks, name, step, losses)
                self._record_segment(hooks, step, losses)
                if self.checkpoint_events:
                    hooks.checkpoint(step, path, {"loss": row["loss"]})
        for step_saved in self.save_steps:  # a kill between rename and record: record now
            if (root / checkpoint_name(step_saved, self.total_steps)).is_dir():
                self._record_segment(hooks, step_saved, losses)
        resume_dir = root / RESUME
        if resume_dir.is_dir():
            import shutil

            shutil.rmtree(resume_dir, ignore_errors=True)
        result.losses = losses
        result.checkpoints = checkpoint_dirs(root)
        result.seconds = time.perf_counter() - t_start
        return result
