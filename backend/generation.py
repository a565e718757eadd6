"""Batched chat generation and perplexity, shared by every kind that asks a model questions.

Stable API (the `smoke` and `degradation` kinds depend on it):

    GenParams(max_new_tokens=64, do_sample=False, temperature=1.0, top_k=50, top_p=1.0,
              max_seq_length=512)
    iter_generate(model, tok, prompts, params, *, controller=None, image=None) -> Iterator[list[Generation]]
    generate(model, tok, prompts, params, *, controller=None, image=None) -> list[Generation]
    perplexity(model, tok, text) -> float

A prompt is a user message (str) or a full chat (list of {"role", "content"} dicts). It
is rendered with the tokenizer's chat template (plain text when there is none), batches
are left-padded, and only the new tokens are decoded. Batches go through a
`BatchController`, so an out-of-memory error shrinks the batch and retries the same
prompts instead of failing the run.

Greedy decoding (`do_sample=False`) is deterministic. Whether a prompt gives the same
text alone and inside a padded batch depends on the kernels: padding changes matrix
shapes, so float32 logits can differ in the last bits and, rarely, flip a near-tie. Each
`Generation` records the batch size that produced it so such differences can be traced.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .batching import BatchController

Prompt = str | list[dict[str, Any]]


class GenParams(BaseModel):
    """Decoding settings; recorded with every output (the seed's `gen_params`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(64, ge=1, le=8192, description="Most new tokens per answer.")
    do_sample: bool = Field(False, description="Sample instead of greedy decoding.")
    temperature: float = Field(1.0, gt=0.0, le=10.0, description="Sampling temperature.")
    top_k: int = Field(50, ge=0, description="Sample among the k likeliest tokens (0: all).")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    max_seq_length: int = Field(
        512, ge=8, description="Prompt tokens kept (from the end); not applied with an image."
    )

    def generate_kwargs(self) -> dict[str, Any]:
        """What `model.generate` receives; sampling knobs only when sampling (transformers
        warns about them otherwise, and they would not change a greedy result)."""
        kw: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample}
        if self.do_sample:
            kw.update(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)
        else:  # override sampling defaults some checkpoints ship in generation_config.json
            kw.update(temperature=None, top_k=None, top_p=None)
        return kw

    def record(self) -> dict[str, Any]:
        return self.model_dump()


@dataclass(frozen=True)
class Generation:
    """One prompt's answer."""

    index: int  # position of the prompt in the input sequence
    text: str
    tokens_in: int  # prompt tokens after the chat template (no padding)
    tokens_out: int  # new tokens, not counting the end-of-sequence token or padding
    batch_size: int  # prompts generated together with this one (padding depends on it)
    seconds: float  # wall time of the whole batch
    token_ids: tuple[int, ...] = ()  # the new tokens (for log-probabilities of the answer)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _messages(prompt: Prompt, with_image: bool) -> list[dict[str, Any]]:
    if not isinstance(prompt, str):
        return list(prompt)
    if with_image:
        return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    return [{"role": "user", "content": prompt}]


def render(tok_or_proc: Any, prompt: Prompt, *, with_image: bool = False) -> str:
    """The exact text the model sees for `prompt` (chat template + assistant turn start)."""
    if getattr(tok_or_proc, "chat_template", None):
        return tok_or_proc.apply_chat_template(
            _messages(prompt, with_image), tokenize=False, add_generation_prompt=True
        )
    if isinstance(prompt, str):
        return prompt
    return "\n".join(str(m["content"]) for m in prompt)


def _stop_ids(model: Any, tok: Any) -> set[int]:
    ids = model.generation_config.eos_token_id
    out = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    for extra in (tok.eos_token_id, tok.pad_token_id):
        if extra is not None:
            out.add(int(extra))
    return out


def _load_image(image: Any) -> Any:
    if image is None or (not isinstance(image, str | bytes) and not hasattr(image, "__fspath__")):
        return image
    from PIL import Image

    return Image.open(image).convert("RGB")


def generate_batch(
    model: Any, tok: Any, prompts: Sequence[Prompt], params: GenParams, *, image: Any = None
) -> list[Generation]:
    """One `model.generate` call over `prompts` (no batching policy; see `iter_generate`).

    `tok` is a tokenizer, or a processor when an image is given (the same image is shown
    with every prompt, as in the seed's image-description runs).
    """
    import torch

    image = _load_image(image)
    tokenizer = getattr(tok, "tokenizer", tok)
    texts = [render(tok, p, with_image=image is not None) for p in prompts]
    if image is not None:
        # Never truncate around an image: cutting its placeholder tokens breaks the model.
        enc = tok(text=texts, images=[image] * len(texts), return_tensors="pt", padding=True)
    else:
        tokenizer.truncation_side = "left"  # keep the end: the question and the assistant cue
        enc = tokenizer(
            texts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=params.max_seq_length,
            add_special_tokens=False,  # the chat template already placed them
        )
    device = next(model.parameters()).device
    enc = enc.to(device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**enc, **params.generate_kwargs(), pad_token_id=tokenizer.pad_token_id)
    seconds = time.perf_counter() - t0
    prompt_len = enc["input_ids"].shape[1]
    stops = _stop_ids(model, tokenizer)
    results = []
    for i, row in enumerate(out[:, prompt_len:].tolist()):
        n = next((j for j, t in enumerate(row) if t in stops), len(row))
        results.append(
            Generation(
                index=i,
                text=tokenizer.decode(row[:n], skip_special_tokens=True).strip(),
                tokens_in=int(enc["attention_mask"][i].sum()),
                tokens_out=n,
                batch_size=len(prompts),
                seconds=round(seconds, 4),
                token_ids=tuple(row[:n]),
            )
        )
    return results


def iter_generate(
    model: Any,
    tok: Any,
    prompts: Sequence[Prompt],
    params: GenParams,
    *,
    controller: BatchController | None = None,
    image: Any = None,
) -> Iterator[list[Generation]]:
    """Answers batch by batch, in prompt order, each with `index` into `prompts`.

    Yielding per batch lets the caller record and check for a stop before the next
    batch starts. Without a controller, all prompts run as one batch.
    """
    ctl = controller or BatchController(start=max(1, len(prompts)), maximum=max(1, len(prompts)))
    image = _load_image(image)

    def work(batch: list[tuple[int, Prompt]]) -> list[Generation]:
        gens = generate_batch(model, tok, [p for _, p in batch], params, image=image)
        return [
            Generation(idx, g.text, g.tokens_in, g.tokens_out, g.batch_size, g.seconds, g.token_ids)
            for (idx, _), g in zip(batch, gens, strict=True)
        ]

    for batch in ctl.iter_batches(list(enumerate(prompts)), work):
        yield batch.result


def generate(
    model: Any,
    tok: Any,
    prompts: Sequence[Prompt],
    params: GenParams,
    *,
    controller: BatchController | None = None,
    image: Any = None,
) -> list[Generation]:
    """All answers at once (see `iter_generate`)."""
    return [
        g for batch in iter_generate(model, tok, prompts, params, controller=controller, image=image)
        for g in batch
    ]  # fmt: skip


def perplexity(model: Any, tok: Any, text: str, *, window: int | None = None) -> float:
    """exp(mean next-token loss) of `text` under the model, in sliding windows when long.

    A degraded model's perplexity on ordinary prose rises with the damage, which is why the
    degradation sweeps record it once per level. Windows of `window` tokens (default: the
    model's context, capped at 1024) overlap by half so every scored token has context.
    """
    import torch

    tokenizer = getattr(tok, "tokenizer", tok)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=True)["input_ids"]
    if ids.shape[1] < 2:
        raise ValueError("perplexity needs a text of at least two tokens")
    limit = getattr(model.config.get_text_config(), "max_position_embeddings", None) or 1024
    window = min(window or 1024, limit)
    stride = max(1, window // 2)
    device = next(model.parameters()).device
    total_nll, total_tokens, prev_end = 0.0, 0, 0
    with torch.inference_mode():
        for begin in range(0, ids.shape[1], stride):
            end = min(begin + window, ids.shape[1])
            chunk = ids[:, begin:end].to(device)
            labels = chunk.clone()
            fresh = end - prev_end  # score only tokens no earlier window scored
            labels[:, : chunk.shape[1] - fresh] = -100
            scored = int((labels[:, 1:] != -100).sum())
            if scored:
                loss = model(input_ids=chunk, labels=labels).loss
                total_nll += float(loss) * scored
                total_tokens += scored
            prev_end = end
            if end == ids.shape[1]:
                break
    return math.exp(total_nll / total_tokens)
