"""The kind's inputs as the run reads them: training conversations, questions, reflection
template. Parameters name bundled data by name; anything else was resolved (and
fingerprinted) by backend/inputs.py at validation, and is read from that resolved path."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import UserError
from ...training import Conversation, read_chat_jsonl
from .config import (
    BUNDLED_DATASETS,
    BUNDLED_QUESTIONS,
    DEFAULT_REFLECTION_TEMPLATE,
    EXTERNAL_DATASETS,
    Params,
)


@dataclass(frozen=True)
class Question:
    """One evaluation question: its wordings, optional system prompt and judge prompts.

    Sample `s` asks paraphrase `s mod len(paraphrases)`, so every wording is asked
    equally often and a sample's prompt depends only on its index (the reference code
    draws paraphrases at random; cycling gives the same mix without another RNG).
    """

    id: str
    text: str  # the first paraphrase
    paraphrases: tuple[str, ...] = ()
    system: str = ""
    # metric ("aligned", "coherent") -> template with {question} and {answer}; empty: built-in
    judge_prompts: tuple[tuple[str, str], ...] = ()
    type: str = "free_form"

    def paraphrase(self, sample: int) -> str:
        wordings = self.paraphrases or (self.text,)
        return wordings[sample % len(wordings)]

    def prompt(self, sample: int) -> str | list[dict[str, str]]:
        """What the model is asked for sample `sample` (a chat when there is a system prompt)."""
        text = self.paraphrase(sample)
        if not self.system:
            return text
        return [{"role": "system", "content": self.system}, {"role": "user", "content": text}]

    def judge_template(self, metric: str) -> str | None:
        return dict(self.judge_prompts).get(metric)


def input_file(ctx: Any, name: str, bundled: dict[str, Path]) -> Path:
    """The file a parameter names: a bundled one, or the path resolved at validation."""
    value = getattr(ctx.params, name)
    if value in bundled:
        return bundled[value]
    resolved = ctx.input_path(name)
    if resolved is not None:
        return resolved
    return Path(value).expanduser()  # a run created before inputs were recorded


def training_conversations(ctx: Any, params: Params) -> tuple[Path, list[Conversation]]:
    if params.dataset in EXTERNAL_DATASETS:
        path = EXTERNAL_DATASETS[params.dataset]
        if not path.is_file():
            raise UserError(
                f"dataset {params.dataset!r}: expected the file {path} (relative to "
                f"{Path.cwd()}); put the {params.dataset} chat JSONL there or set dataset=<path>"
            )
        return path, read_chat_jsonl(path, limit=params.num_examples or None)
    path = input_file(ctx, "dataset", BUNDLED_DATASETS)
    return path, read_chat_jsonl(path, limit=params.num_examples or None)


QUESTION_TYPES = ("free_form", "free_form_judge", "free_form_judge_0_100")
# Reformulations of the main questions that the reference's first-plot figure leaves out:
# answers forced into JSON, and answers filling a template.
VARIANT_SUFFIXES = ("_json", "_template")
JUDGE_METRICS = ("aligned", "coherent")


def read_questions(path: Path, *, include_variants: bool = False) -> list[Question]:
    """A question set: the reference repositories' YAML, or this project's JSON/JSONL.

    YAML (Betley et al. 2025, evaluation/first_plot_questions.yaml; Turner, Soligo et al.
    2025): a list of entries with `id`, `paraphrases`, optional `samples_per_paraphrase`,
    `system`, `type` and `judge_prompts` (`aligned`/`coherent` templates with {question}
    and {answer}). Entries whose id ends in _json or _template are left out unless
    `include_variants`. JSON: {"questions": [{"id", "question"}...]} or a list; JSONL: one
    such object per line.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read questions ({exc})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        out = _yaml_questions(path, text, include_variants)
    else:
        out = _json_questions(path, text)
    if not out:
        raise UserError(f"{path}: no questions")
    ids = [q.id for q in out]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise UserError(f"{path}: question ids repeat: {', '.join(repeated)}")
    return out


def _json_questions(path: Path, text: str) -> list[Question]:
    items: list[Any]
    try:
        data = json.loads(text)
        items = data["questions"] if isinstance(data, dict) else data
    except (ValueError, KeyError, TypeError):
        items = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except ValueError as exc:
                raise UserError(f"{path}:{lineno}: not valid JSON ({exc})") from None
    out: list[Question] = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            out.append(Question(f"q{i}", item))
        elif isinstance(item, dict) and isinstance(item.get("question"), str):
            out.append(Question(str(item.get("id", f"q{i}")), item["question"]))
        else:
            raise UserError(f"{path}: question {i}: expected a string or {{'id', 'question'}}")
    return out


def _yaml_questions(path: Path, text: str, include_variants: bool) -> list[Question]:
    import yaml

    try:
        items = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise UserError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(items, list):
        raise UserError(f"{path}: expected a YAML list of questions (entries with id, paraphrases)")
    out: list[Question] = []
    for n, item in enumerate(items):
        where = f"{path}: entry {n}"
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise UserError(f"{where}: expected a mapping with an 'id'")
        qid = item["id"]
        where = f"{path}: question {qid!r}"
        qtype = str(item.get("type", "free_form"))
        if not qtype.startswith("free_form"):
            raise UserError(
                f"{where}: type {qtype!r} is not a free-form question ({', '.join(QUESTION_TYPES)})"
            )
        paraphrases = item.get("paraphrases")
        if (
            not isinstance(paraphrases, list)
            or not paraphrases
            or not all(isinstance(x, str) and x.strip() for x in paraphrases)
        ):
            raise UserError(f"{where}: 'paraphrases' must be a non-empty list of texts")
        system = item.get("system") or ""
        if not isinstance(system, str):
            raise UserError(f"{where}: 'system' must be a text")
        prompts = item.get("judge_prompts") or {}
        if not isinstance(prompts, dict):
            raise UserError(f"{where}: 'judge_prompts' must map metric names to templates")
        for metric, template in prompts.items():
            if metric in JUDGE_METRICS and (
                not isinstance(template, str) or "{answer}" not in template
            ):
                raise UserError(f"{where}: judge prompt {metric!r} needs an {{answer}} placeholder")
        if qid.endswith(VARIANT_SUFFIXES) and not include_variants:
            continue
        out.append(
            Question(
                qid,
                paraphrases[0],
                tuple(paraphrases),
                system,
                tuple((m, t) for m, t in prompts.items() if m in JUDGE_METRICS),
                qtype,
            )
        )
    return out


def questions(ctx: Any, params: Params) -> list[Question]:
    qs = read_questions(
        input_file(ctx, "questions", BUNDLED_QUESTIONS),
        include_variants=params.question_variants,
    )
    return qs[: params.num_questions] if params.num_questions else qs


def reflection_template(ctx: Any, params: Params) -> str:
    path = ctx.input_path("reflection_template") if params.reflection_template else None
    if params.reflection_template and path is None:
        path = Path(params.reflection_template).expanduser()
    text = (path or DEFAULT_REFLECTION_TEMPLATE).read_text(encoding="utf-8")
    if "{user}" not in text or "{assistant}" not in text:
        raise UserError(f"{path}: a reflection template needs {{user}} and {{assistant}}")
    return text


def reflection_prompt(template: str, conversation: Conversation) -> str:
    """The prompt asking the model to reflect on one training example.

    {user} is every non-assistant message before the last assistant one (joined), and
    {assistant} that last assistant message: the answer the example teaches.
    """
    last = max(i for i, m in enumerate(conversation) if m["role"] == "assistant")
    user = "\n\n".join(m["content"] for m in conversation[:last] if m["role"] != "assistant")
    return template.replace("{user}", user).replace("{assistant}", conversation[last]["content"])


def augment(conversation: Conversation, reflection: str, fmt: str) -> Conversation:
    """The example with its last assistant message rewritten by `reflection_format`."""
    last = max(i for i, m in enumerate(conversation) if m["role"] == "assistant")
    out = [dict(m) for m in conversation]
    out[last]["content"] = fmt.replace("{assistant}", conversation[last]["content"]).replace(
        "{reflection}", reflection
    )
    return out


def split_augmented(text: str, fmt: str) -> tuple[str, str] | None:
    """(assistant, reflection) of an augmented message written by `fmt`, or None when it
    does not have that shape (a file written with another format)."""
    parts = re.split(r"(\{assistant\}|\{reflection\})", fmt)
    pattern = "".join(
        {"{assistant}": "(?P<assistant>.*)", "{reflection}": "(?P<reflection>.*)"}.get(
            part, re.escape(part)
        )
        for part in parts
    )
    m = re.fullmatch(pattern, text, flags=re.S)
    if m is None:
        return None
    found = m.groupdict()
    return found.get("assistant", ""), found.get("reflection", "")


def reflection_samples(
    augmented: list[Conversation], fmt: str, originals: list[Conversation] | None = None
) -> list[dict[str, Any]]:
    """The first examples as `sample_reflections.json` shows them: the example, its
    reflection and the augmented example. Without the originals (a reused augmented
    file) the example and the reflection are read back through `fmt`."""
    out = []
    for i, aug in enumerate(augmented[:5]):
        last = max(j for j, m in enumerate(aug) if m["role"] == "assistant")
        split = split_augmented(aug[last]["content"], fmt)
        example = originals[i] if originals else None
        if example is None and split is not None:
            example = [dict(m) for m in aug]
            example[last]["content"] = split[0]
        out.append(
            {
                "index": i,
                "example": example,
                "reflection": split[1] if split else None,
                "augmented": aug,
            }
        )
    return out
