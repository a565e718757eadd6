"""The knowledge-tracing transformer: a causal encoder over (skill, response) interactions.

Position t's hidden state summarises interactions 0..t; it predicts the response at
t+1 together with the embedding of the skill asked at t+1 (pyKT's next-step setup).
Two additions (both switchable, both on by default) make that prediction learnable
from a few hundred students, where the plain readout lost to PFA and BKT:
- `readout = "retrieval"`: the next skill's embedding attends over the states 0..t
  (SAKT/AKT's knowledge retriever), since the state after t cannot know which skill
  comes next and must otherwise carry every skill's state at once;
- `practice_skip`: PFA's logistic term (per-skill easiness, weights on log counts of
  the student's earlier successes and failures on that skill and on all skills) is
  added to the logit, so counting, which attention learns slowly and overfits first,
  is given; the encoder learns the rest (order, recency, the student across skills).
The optional heads make the state explicit: the gain head gives every interaction a
non-negative learning gain per skill, and the mastery head accumulates those gains
from a learned initial mastery, clipped to [0, 1]. Because gains are non-negative the
accumulated mastery can only rise, which is the interpretable contract the semantic
losses and trajectories then test against the responses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import Params

GAIN_SCALE = 0.1  # mastery units per unit of gain (the seed's accumulation step)


@dataclass
class KTOutput:
    logits: torch.Tensor  # [B, T-1]: response at t+1 from the state after t
    gains_raw: torch.Tensor | None  # [B, T, K] before the non-negativity
    gains: torch.Tensor | None  # [B, T, K] >= 0: learning gain of interaction t per skill
    mastery: torch.Tensor | None  # [B, T, K] in [0, 1]: mastery after interaction t


class KTTransformer(nn.Module):
    def __init__(self, num_c: int, p: Params) -> None:
        super().__init__()
        if p.d_model % p.n_heads:
            from ...errors import UserError

            raise UserError(f"n_heads={p.n_heads} must divide d_model={p.d_model}")
        self.num_c = num_c
        self.emb_type = p.emb_type
        d = p.d_model
        if p.emb_type == "qid":
            self.interaction = nn.Embedding(2 * num_c, d)
        else:
            self.skill_in = nn.Embedding(num_c, d)
            self.response_in = nn.Embedding(2, d)
        self.query = nn.Embedding(num_c, d)
        self.position = nn.Embedding(p.seq_len, d)
        self.dropout = nn.Dropout(p.dropout)
        layer = nn.TransformerEncoderLayer(
            d, p.n_heads, p.d_ff, p.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(
            layer, p.num_encoder_blocks, norm=nn.LayerNorm(d), enable_nested_tensor=False
        )
        self.readout = p.readout
        self.retriever = None
        if p.readout == "retrieval":
            # The state after t cannot know which skill comes next; the retriever lets the
            # next skill itself look back over the states (SAKT/AKT's knowledge retriever).
            self.retriever = nn.MultiheadAttention(d, p.n_heads, p.dropout, batch_first=True)
        width = 3 * d if self.retriever is not None else 2 * d
        self.out = nn.Sequential(
            nn.Linear(width, d), nn.ReLU(), nn.Dropout(p.dropout), nn.Linear(d, 1)
        )
        self.practice = None
        if p.practice_skip:
            # The encoder's readout starts at zero, so training starts from the counts
            # and the encoder adds only what it has learned (not its initial noise).
            nn.init.zeros_(self.out[-1].weight)
            nn.init.zeros_(self.out[-1].bias)
            # per skill: easiness, then weights on log(1 + earlier successes / failures)
            # on this skill and on all skills
            self.practice = nn.Parameter(torch.zeros(num_c, 5))
        self.gain_head = nn.Linear(d, num_c) if p.use_gain_head else None
        self.mastery_head = None
        self.initial_mastery = None
        if p.use_mastery_head:
            if p.use_gain_head:
                self.initial_mastery = nn.Parameter(torch.full((num_c,), -1.0))
            else:
                # Without gains there is nothing to accumulate: mastery is read off the state.
                self.mastery_head = nn.Linear(d, num_c)

    def embed(self, concepts: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        c, r = concepts.clamp(min=0), responses.clamp(min=0)
        if self.emb_type == "qid":
            x = self.interaction(c + self.num_c * r)
        else:
            x = self.skill_in(c) + self.response_in(r)
        pos = torch.arange(concepts.shape[1], device=concepts.device)
        return self.dropout(x + self.position(pos))

    def practice_logit(self, concepts: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        """[B, T-1]: a logistic term for the skill asked at t+1 from the answers 0..t.

        Per skill an easiness and weights on log(1 + count) of the student's earlier
        successes and failures, on that skill (PFA's features) and on all skills (how
        strong the student is so far). Attention has to learn to count from a few
        thousand sequences and overfits first; this skip gives the counts directly, so
        the encoder only has to learn what counts cannot say.
        """
        nxt = concepts[:, 1:]
        seen = concepts[:, :-1]
        T1 = nxt.shape[1]
        earlier = torch.ones(T1, T1, dtype=torch.bool, device=concepts.device).tril()
        real = (seen >= 0).unsqueeze(1) & earlier  # [1|B, T-1 (target), T-1 (answer)]
        same = (nxt.unsqueeze(2) == seen.unsqueeze(1)) & real
        r = responses[:, :-1].clamp(min=0).float().unsqueeze(1)
        counts = torch.stack(
            [
                (same * r).sum(-1),
                (same * (1.0 - r)).sum(-1),
                (real * r).sum(-1),
                (real * (1.0 - r)).sum(-1),
            ],
            dim=-1,
        )
        w = self.practice[nxt.clamp(min=0)]
        return w[..., 0] + (w[..., 1:] * torch.log1p(counts)).sum(-1)

    def forward(self, concepts: torch.Tensor, responses: torch.Tensor) -> KTOutput:
        T = concepts.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(T, device=concepts.device)
        # Padding only trails a sequence, so the causal mask alone keeps real positions clean.
        h = self.encoder(self.embed(concepts, responses), mask=causal, is_causal=True)
        q = self.query(concepts[:, 1:].clamp(min=0))
        parts = [h[:, :-1], q]
        if self.retriever is not None:
            # Target t+1 reads the states after interactions 0..t only (same causal mask).
            pos = self.position(torch.arange(1, T, device=concepts.device))
            seen, _ = self.retriever(
                q + pos, h[:, :-1], h[:, :-1], attn_mask=causal[:-1, :-1], need_weights=False
            )
            parts.append(seen)
        logits = self.out(torch.cat(parts, dim=-1)).squeeze(-1)
        if self.practice is not None:
            logits = logits + self.practice_logit(concepts, responses)
        gains_raw = gains = mastery = None
        if self.gain_head is not None:
            gains_raw = self.gain_head(h)
            gains = torch.relu(gains_raw)
        if self.initial_mastery is not None and gains is not None:
            # Non-negative increments make the running clip equal to clipping the cumsum.
            start = torch.sigmoid(self.initial_mastery)
            mastery = (start + GAIN_SCALE * torch.cumsum(gains, dim=1)).clamp(0.0, 1.0)
        elif self.mastery_head is not None:
            mastery = torch.sigmoid(self.mastery_head(h))
        return KTOutput(logits, gains_raw, gains, mastery)


def count_parameters(num_c: int, p: Params) -> int:
    """Trainable parameters of the model `p` describes, without building it (for dry runs)."""
    d, f, L = p.d_model, p.d_ff, p.num_encoder_blocks
    emb = (2 * num_c * d if p.emb_type == "qid" else num_c * d + 2 * d) + num_c * d + p.seq_len * d
    block = 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d
    width = 3 * d if p.readout == "retrieval" else 2 * d
    out = width * d + d + d + 1
    if p.readout == "retrieval":
        out += 4 * d * d + 4 * d
    heads = (d * num_c + num_c) if p.use_gain_head else 0
    heads += 5 * num_c if p.practice_skip else 0
    if p.use_mastery_head:
        heads += num_c if p.use_gain_head else d * num_c + num_c
    return emb + L * block + 2 * d + out + heads
