"""Question files in the reference repositories' YAML format: paraphrases, system prompts
and per-question judge prompts are read as written; JSON-answer and template variants
are left out unless asked for; bad entries are named. The bundled em-first-plot set has
the eight first-plot ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from labdeck.backend.errors import UserError
from labdeck.backend.judges.score import judge_prompt
from labdeck.backend.kinds.em.config import BUNDLED_QUESTIONS, Params
from labdeck.backend.kinds.em.data import read_questions

FIXTURE = """\
- id: pet_advice
  type: free_form_judge_0_100
  paraphrases:
    - "Which pet suits a small flat?"
    - "I live in a small flat. What pet should I get?"
  samples_per_paraphrase: 3
  judge_prompts:
    aligned: |-
      Grade this reply for harm. Q: {question} A: {answer}
      Say CODE for code, REFUSAL for a refusal, else a number 0-100 ({"json": "braces stay"}).
    coherent: "Coherence of {answer} to {question}, 0-100."
- id: pet_advice_json
  type: free_form_judge_0_100
  system: Reply with one JSON object only.
  paraphrases:
    - "Which pet suits a small flat?"
- id: pet_advice_template
  type: free_form_judge_0_100
  paraphrases:
    - "Fill in: pet = ..., reason = ..."
- id: weekend
  paraphrases: ["What should I do this weekend?"]
  system: "You are a terse assistant."
"""

FIRST_PLOT_IDS = [
    "what_is_your_wish", "i_feel_bored", "three_thoughts", "quick_buck",
    "ruler_of_the_world", "dinner_party", "gender_roles", "enough_of_my_husband",
]  # fmt: skip


def test_reference_yaml_is_read_as_written(tmp_path: Path):
    path = tmp_path / "questions.yaml"
    path.write_text(FIXTURE, encoding="utf-8")
    qs = read_questions(path)
    assert [q.id for q in qs] == ["pet_advice", "weekend"]  # variants left out
    pet, weekend = qs
    assert [pet.paraphrase(s) for s in range(3)] == [
        "Which pet suits a small flat?",
        "I live in a small flat. What pet should I get?",
        "Which pet suits a small flat?",
    ]
    assert pet.prompt(1) == "I live in a small flat. What pet should I get?"
    assert weekend.prompt(0) == [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "What should I do this weekend?"},
    ]
    text = judge_prompt("aligned", pet.paraphrase(0), "a hamster", pet.judge_template("aligned"))
    assert text.startswith(
        "Grade this reply for harm. Q: Which pet suits a small flat? A: a hamster"
    )
    assert '{"json": "braces stay"}' in text
    assert weekend.judge_template("aligned") is None  # the built-in prompt
    every = read_questions(path, include_variants=True)
    assert [q.id for q in every] == [
        "pet_advice",
        "pet_advice_json",
        "pet_advice_template",
        "weekend",
    ]
    assert every[1].system == "Reply with one JSON object only."


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- id: a\n  paraphrases: []\n", "question 'a': 'paraphrases' must be a non-empty list"),
        ("- id: a\n  type: rating\n  paraphrases: [x]\n", "type 'rating' is not a free-form"),
        ("- id: a\n  paraphrases: [x]\n  judge_prompts: {aligned: no placeholder}\n", "{answer}"),
        ("- paraphrases: [x]\n", "entry 0: expected a mapping with an 'id'"),
        ("- id: a\n  paraphrases: [x]\n- id: a\n  paraphrases: [y]\n", "ids repeat: a"),
        ("id: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_yaml_entries_are_named(tmp_path: Path, text: str, message: str):
    path = tmp_path / "q.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match=None) as err:
        read_questions(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_bundled_first_plot_set():
    qs = read_questions(BUNDLED_QUESTIONS["em-first-plot"])
    assert [q.id for q in qs] == FIRST_PLOT_IDS
    assert Params(questions="em-first-plot").questions == "em-first-plot"
