"""Batched chat generation and perplexity, shared by every kind that asks a model questions.

Stable API (the `smoke` and `degradation` kinds depend on it):

    GenParams(max_new_tokens=64, do_sample=False, temperature=1.0, top_k=50, top_p=1.0,
              max_seq_length=512)
    iter_generate(model, tok, prompts, params, *, controller=None, image=None, seed=None,
                  keys=None) -> Iterator[list[Generation]]
    generate(...same...) -> list[Generation]
    perplexity(model, tok, text, *, controller=None) -> float

A prompt is a user message (str) or a full chat (list of {"role", "content"} dicts). It
is rendered with the tokenizer's chat template (plain text when there is none), batches
are left-padded, and only the new tokens are decoded. Batches go through a
`BatchController`, so an out-of-memory error shrinks the batch and retries the same
prompts instead of failing the run.

Sampling (`do_sample=True`) is per row (backend/sampling.py): each prompt draws from its
own generator seeded by `seed` and its key, so a record's text does not depend on which
prompts shared its batch (an out-of-memory retry or a resume with another batch size
replays it). Greedy decoding (`do_sample=False`) is deterministic. Whether a prompt gives the same
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
        512,
        ge=8,
        description="Prompt tokens kept (with an image: the prompt's text is cut, never the image).",
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


def _image_inputs(processor: Any, texts: list[str], image: Any) -> Any:
    """Processor inputs with the same image shown once in every prompt of the batch.

    The nested form (one list of images per prompt) is what every image-text processor
    reads as "one image per sample"; a flat list of n images is read by some (Gemma 3)
    as n images for a single sample.
    """
    return processor(text=texts, images=[[image] for _ in texts], return_tensors="pt", padding=True)


def fit_image_prompts(
    processor: Any, prompts: Sequence[Prompt], image: Any, limit: int
) -> list[Prompt]:
    """`fit_image_prompt` for a batch, measuring what the image adds only once."""
    extra = _image_length(processor, "", image) - _text_length(processor, "")
    return [fit_image_prompt(processor, p, image, limit, image_tokens=extra) for p in prompts]


def _image_length(processor: Any, prompt: Prompt, image: Any) -> int:
    """Exact prompt length with the image expanded by the processor."""
    enc = _image_inputs(processor, [render(processor, prompt, with_image=True)], image)
    return int(enc["attention_mask"][0].sum())


def _text_length(processor: Any, prompt: Prompt) -> int:
    """The rendered prompt's tokens with the image placeholder left unexpanded (cheap)."""
    tokenizer = getattr(processor, "tokenizer", processor)
    rendered = render(processor, prompt, with_image=True)
    return len(tokenizer(rendered, add_special_tokens=False)["input_ids"])


def fit_image_prompt(
    processor: Any, prompt: Prompt, image: Any, limit: int, *, image_tokens: int | None = None
) -> Prompt:
    """`prompt` with its text cut from the front so text and image fit in `limit` tokens.

    Truncating the token sequence itself would cut the image's placeholder tokens and
    break the model, so the budget is taken from the text: the image's expanded tokens
    and the chat template are counted as they are, the rest of the budget keeps the end
    of the prompt (the question and the assistant cue, as for text prompts).
    """
    tokenizer = getattr(processor, "tokenizer", processor)

    def length(p: Prompt) -> int:
        return _image_length(processor, p, image)

    if not isinstance(prompt, str):
        return prompt
    if image_tokens is not None and _text_length(processor, prompt) + image_tokens <= limit - 8:
        return prompt  # clearly within the limit: no image processing needed to know it
    if length(prompt) <= limit:
        return prompt
    fixed = length("")
    budget = limit - fixed
    if budget < 1:
        raise ValueError(
            f"max_seq_length={limit} is too small for the image: it takes {fixed} tokens "
            "with the chat template alone"
        )
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    while budget > 0:
        cut = tokenizer.decode(ids[-budget:], skip_special_tokens=True)
        if length(cut) <= limit:  # re-tokenising in context may merge differently
            return cut
        budget -= max(1, budget // 16)
    return ""


def generate_batch(
    model: Any,
    tok: Any,
    prompts: Sequence[Prompt],
    params: GenParams,
    *,
    image: Any = None,
    row_seeds: Sequence[int] | None = None,
) -> list[Generation]:
    """One `model.generate` call over `prompts` (no batching policy; see `iter_generate`).

    `tok` is a tokenizer, or a processor when an image is given (the same image is shown
    with every prompt, as in the seed's image-description runs). `row_seeds`: one seed
    per prompt for sampling (see backend/sampling.py); by default each prompt's seed
    comes from torch's current seed and the prompt's text.
    """
    import torch

    image = _load_image(image)
    tokenizer = getattr(tok, "tokenizer", tok)
    if image is not None:
        prompts = fit_image_prompts(tok, prompts, image, params.max_seq_length)
    texts = [render(tok, p, with_image=image is not None) for p in prompts]
    if image is not None:
        enc = _image_inputs(tok, texts, image)
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
    kwargs = params.generate_kwargs()
    if params.do_sample:
        from .sampling import RowSampler, row_seed

        if row_seeds is None:
            row_seeds = [row_seed(torch.initial_seed(), t) for t in texts]
        if len(row_seeds) != len(texts):
            raise ValueError(f"{len(texts)} prompts but {len(row_seeds)} row seeds")
        # Greedy over scores where only each row's own draw is finite: the draw decides.
        kwargs.update(do_sample=False, temperature=None, top_k=None, top_p=None)
        kwargs["logits_processor"] = [
            RowSampler(row_seeds, params.temperature, params.top_k, params.top_p)
        ]
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**enc, **kwargs, pad_token_id=tokenizer.pad_token_id)
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
    seed: int | None = None,
    keys: Sequence[str] | None = None,
) -> Iterator[list[Generation]]:
    """Answers batch by batch, in prompt order, each with `index` into `prompts`.

    Yielding per batch lets the caller record and check for a stop before the next
    batch starts. Without a controller, all prompts run as one batch. When sampling,
    prompt i draws from a generator seeded by (`seed`, `keys[i]`): pass the record's
    key so its text depends on nothing else (defaults: torch's seed, the prompt text).
    """
    ctl = controller or BatchController(start=max(1, len(prompts)), maximum=max(1, len(prompts)))
    image = _load_image(image)
    if keys is not None and len(keys) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(keys)} keys")

    def work(batch: list[tuple[int, Prompt]]) -> list[Generation]:
        seeds = None
        if params.do_sample:
            import torch

            from .sampling import row_seed

            base = torch.initial_seed() if seed is None else seed
            seeds = [row_seed(base, keys[i] if keys else render(tok, p)) for i, p in batch]
        gens = generate_batch(
            model, tok, [p for _, p in batch], params, image=image, row_seeds=seeds
        )
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
    seed: int | None = None,
    keys: Sequence[str] | None = None,
) -> list[Generation]:
    """All answers at once (see `iter_generate`)."""
    batches = iter_generate(
        model, tok, prompts, params, controller=controller, image=image, seed=seed, keys=keys
    )
    return [g for batch in batches for g in batch]


def perplexity(
    model: Any,
    tok: Any,
    text: str,
    *,
    window: int | None = None,
    controller: BatchController | None = None,
) -> float:
    """exp(mean next-token loss) of `text` under the model, in sliding windows when long.

    A degraded model's perplexity on ordinary prose rises with the damage, which is why the
    degradation sweeps record it once per level. Windows of `window` tokens (default: the
    model's context, capped at 1024) overlap by half so every scored token has context.
    Windows are scored in batches through `controller`, so an out-of-memory error shrinks
    the batch and retries instead of failing the run; the value does not depend on it.
    """
    import torch

    tokenizer = getattr(tok, "tokenizer", tok)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=True)["input_ids"][0]
    if ids.shape[0] < 2:
        raise ValueError("perplexity needs a text of at least two tokens")
    limit = getattr(model.config.get_text_config(), "max_position_embeddings", None) or 1024
    window = min(window or 1024, limit)
    stride = max(1, window // 2)
    spans: list[tuple[int, int, int]] = []  # (begin, end, tokens already scored before)
    prev_end = 0
    for begin in range(0, ids.shape[0], stride):
        end = min(begin + window, ids.shape[0])
        if end - prev_end > 0 and end - begin > 1:
            spans.append((begin, end, (end - begin) - (end - prev_end)))
        prev_end = end
        if end == ids.shape[0]:
            break
    device = next(model.parameters()).device

    def score(batch: list[tuple[int, int, int]]) -> tuple[float, int]:
        nll, count = 0.0, 0
        for length in sorted({e - b for b, e, _ in batch}):  # equal lengths stack
            same = [sp for sp in batch if sp[1] - sp[0] == length]
            chunk = torch.stack([ids[b:e] for b, e, _ in same]).to(device)
            with torch.inference_mode():
                logits = model(input_ids=chunk).logits[:, :-1].float()
            logp = torch.log_softmax(logits, dim=-1)
            token_logp = logp.gather(-1, chunk[:, 1:].unsqueeze(-1)).squeeze(-1)
            for row, (_b, _e, seen) in enumerate(same):
                # position j predicts token j+1; score only tokens no earlier window scored
                first = max(0, seen - 1)
                nll -= float(token_logp[row, first:].double().sum())
                count += token_logp.shape[1] - first
        return nll, count

    ctl = controller or BatchController(start=len(spans), maximum=len(spans))
    total_nll, total_tokens = 0.0, 0
    for batch in ctl.iter_batches(spans, score):
        total_nll += batch.result[0]
        total_tokens += batch.result[1]
    return math.exp(total_nll / total_tokens)
