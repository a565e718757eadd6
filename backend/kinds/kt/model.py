"""The knowledge-tracing transformer: a causal encoder over (skill, response) interactions.

Position t's hidden state summarises interactions 0..t; it predicts the response at
t+1 together with the embedding of the skill asked at t+1 (pyKT's next-step setup).
Three additions (all switchable, all on by default) make that prediction learnable
from a few hundred students, where the plain readout lost to PFA and BKT:
- `readout = "retrieval"`: the next skill's embedding attends over the states 0..t
  (SAKT/AKT's knowledge retriever), since the state after t cannot know which skill
  comes next and must otherwise carry every skill's state at once;
- `practice_skip`: PFA's logistic term (per-skill easiness, weights on log counts of
  the student's earlier successes and failures on that skill and on all skills) is
  added to the logit, so counting, which attention learns slowly and overfits first,
  is given; the encoder learns the rest (order, recency, the student across skills);
- `bkt_skip`: BKT's forward filter over each skill's answers (per-skill prior, learn,
  guess, slip) adds the logit of its P(correct): the order of a skill's answers,
  which counts cannot express. prefit.py fits both terms before training.
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
BKT_CAP = 0.5  # guess and slip stay below this, so "known" keeps meaning "answers right"
SKIP_PARAMS = ("practice", "bkt")  # per-skill logistic/BKT weights: their own learning rate


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
        if p.practice_skip or p.bkt_skip:
            # The encoder's readout starts at zero, so training starts from the skip
            # terms and the encoder adds only what it has learned (not its initial noise).
            nn.init.zeros_(self.out[-1].weight)
            nn.init.zeros_(self.out[-1].bias)
        if p.practice_skip:
            # per skill: easiness, then weights on log(1 + earlier successes / failures)
            # on this skill and on all skills
            self.practice = nn.Parameter(torch.zeros(num_c, 5))
        self.bkt = None
        if p.bkt_skip:
            # per skill, as logits: prior, learn, guess, slip (BKT's four parameters);
            # a plausible start (prior 0.3, learn 0.1, guess 0.2, slip 0.1) that the
            # likelihood then moves, as EM would
            start = torch.tensor([0.3, 0.1, 0.2 / BKT_CAP, 0.1 / BKT_CAP]).logit()
            self.bkt = nn.Parameter(start.repeat(num_c, 1))
            # which skip terms count (practice, BKT): the prefit keeps the combination
            # the validation students favour; saved with the weights
            self.register_buffer("skip_gate", torch.ones(2))
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

    def practice_logit(
        self,
        concepts: torch.Tensor,
        responses: torch.Tensor,
        features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[B, T-1]: a logistic term for the skill asked at t+1 from the answers 0..t.

        Per skill an easiness and weights on log(1 + count) of the student's earlier
        successes and failures, on that skill (PFA's features) and on all skills (how
        strong the student is so far). Attention has to learn to count from a few
        thousand sequences and overfits first; this skip gives the counts directly, so
        the encoder only has to learn what counts cannot say. `features` are
        `practice_features` of the same batch, when the caller has them already.
        """
        if features is None:
            features = self.practice_features(concepts, responses)
        w = self.practice[concepts[:, 1:].clamp(min=0)]
        return w[..., 0] + (w[..., 1:] * features).sum(-1)

    @staticmethod
    def practice_features(concepts: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        """[B, T-1, 4]: log(1 + earlier successes, failures) on the skill asked at t+1,
        then on all skills. They depend on the data only, so a fit can compute them once."""
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
        return torch.log1p(counts)

    def bkt_logit(self, concepts: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        """[B, T-1]: the logit of BKT's P(correct) for the skill asked at t+1, forward-
        filtered over the student's answers 0..t on that skill.

        BKT's posterior depends on the order of a skill's answers, not only on their
        counts, so PFA's counts cannot express it; on data from a mastery process the
        filter is the right prior and the encoder learns what it misses (students who
        differ, skills that transfer). Its four per-skill parameters are trained with
        the rest of the model by the same likelihood EM maximises.
        """
        p = self.bkt_filter(concepts, responses)[0].clamp(1e-6, 1 - 1e-6)
        return torch.log(p) - torch.log1p(-p)

    def bkt_filter(
        self, concepts: torch.Tensor, responses: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """([B, T-1], [B, T-1]): BKT's P(correct) and P(known) for the skill asked at t+1,
        given the student's answers 0..t on that skill (Corbett & Anderson 1995's forward
        recursion, no forgetting; P(known) includes the learning step after answer t)."""
        B, T = concepts.shape
        prior, learn = torch.sigmoid(self.bkt[:, 0]), torch.sigmoid(self.bkt[:, 1])
        guess, slip = self.bkt_guess_slip()
        c = concepts.clamp(min=0)
        answered = (concepts >= 0) & (responses >= 0)
        right = responses == 1
        known = prior.unsqueeze(0).expand(B, -1)  # [B, K]: P(known) so far, per skill
        preds, knowns = [], []
        for t in range(T - 1):
            ct = c[:, t : t + 1]
            k = known.gather(1, ct).squeeze(1)
            g, s = guess[c[:, t]], slip[c[:, t]]
            p_right = (k * (1 - s) + (1 - k) * g).clamp(1e-6, 1 - 1e-6)
            post = torch.where(right[:, t], k * (1 - s) / p_right, k * s / (1 - p_right))
            new = post + (1 - post) * learn[c[:, t]]
            new = torch.where(answered[:, t], new, k)
            known = known.scatter(1, ct, new.unsqueeze(1))
            nxt = c[:, t + 1]
            kn = known.gather(1, nxt.unsqueeze(1)).squeeze(1)
            knowns.append(kn)
            preds.append(kn * (1 - slip[nxt]) + (1 - kn) * guess[nxt])
        return torch.stack(preds, dim=1), torch.stack(knowns, dim=1)

    def bkt_guess_slip(self) -> tuple[torch.Tensor, torch.Tensor]:
        """[K], [K]: the filter's guess and slip per skill (each below BKT_CAP)."""
        return BKT_CAP * torch.sigmoid(self.bkt[:, 2]), BKT_CAP * torch.sigmoid(self.bkt[:, 3])

    def skip_logit(
        self,
        concepts: torch.Tensor,
        responses: torch.Tensor,
        practice_features: torch.Tensor | None = None,
    ) -> torch.Tensor | float:
        """The classical terms added to the encoder's logit (0 when there are none).
        Frozen (after the prefit) they need no graph: the filter's per-step states
        are then not kept for a backward pass that would not use them."""
        total: torch.Tensor | float = 0.0
        gate = self.skip_gate.tolist() if self.bkt is not None else [1.0, 1.0]
        terms = [w for w in (self.practice, self.bkt) if w is not None]
        with torch.set_grad_enabled(
            torch.is_grad_enabled() and any(w.requires_grad for w in terms)
        ):
            if self.practice is not None and gate[0]:
                total = total + self.practice_logit(concepts, responses, practice_features)
            if self.bkt is not None and gate[1]:
                total = total + self.bkt_logit(concepts, responses)
        return total

    def encode(self, concepts: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        """[B, T, d]: the state after each interaction (causal: position t sees 0..t)."""
        T = concepts.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(T, device=concepts.device)
        # Padding only trails a sequence, so the causal mask alone keeps real positions clean.
        return self.encoder(self.embed(concepts, responses), mask=causal, is_causal=True)

    def heads(
        self, h: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """(gains_raw, gains, mastery) read off the states; what the semantic numbers use,
        so a pass that only needs them skips the prediction's readout and skip terms."""
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
        return gains_raw, gains, mastery

    def forward(
        self,
        concepts: torch.Tensor,
        responses: torch.Tensor,
        skip: torch.Tensor | None = None,
    ) -> KTOutput:
        """`skip`: the batch's `skip_logit`, when the caller holds it already (frozen skip
        terms depend on the data only, so a trainer computes them once per sequence)."""
        T = concepts.shape[1]
        h = self.encode(concepts, responses)
        q = self.query(concepts[:, 1:].clamp(min=0))
        parts = [h[:, :-1], q]
        if self.retriever is not None:
            # Target t+1 reads the states after interactions 0..t only (same causal mask).
            causal = nn.Transformer.generate_square_subsequent_mask(T - 1, device=concepts.device)
            pos = self.position(torch.arange(1, T, device=concepts.device))
            seen, _ = self.retriever(
                q + pos, h[:, :-1], h[:, :-1], attn_mask=causal, need_weights=False
            )
            parts.append(seen)
        if skip is None:
            skip = self.skip_logit(concepts, responses)
        logits = self.out(torch.cat(parts, dim=-1)).squeeze(-1) + skip
        return KTOutput(logits, *self.heads(h))


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
    heads += 4 * num_c if p.bkt_skip else 0
    if p.use_mastery_head:
        heads += num_c if p.use_gain_head else d * num_c + num_c
    return emb + L * block + 2 * d + out + heads
