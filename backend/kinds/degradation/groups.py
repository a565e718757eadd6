"""Degradable parameter groups, found from the model's own structure.

The seed hard-coded Gemma-3-4b's 34 layers. Here the language model's decoder
layer stack is located (`get_decoder()`, which for Gemma3ForConditionalGeneration
is the language model, so the vision tower is never touched), and each layer's
parameters are sorted by the submodule that owns them. Norm weights are left out
of every group: they are a few thousand values whose conventions differ between
families (Gemma stores 1 + w), so perturbing them would not mean the same thing
across models.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ...errors import UserError

ATTENTION_NAMES = frozenset({"self_attn", "attn", "attention", "self_attention", "cross_attn"})
MLP_NAMES = frozenset({"mlp", "feed_forward", "ffn", "block_sparse_moe", "experts", "moe"})


@dataclass
class ParamGroup:
    name: str
    params: list[tuple[str, nn.Parameter]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def numel(self) -> int:
        return sum(p.numel() for _, p in self.params)

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.params]


@dataclass
class ModelGroups:
    """Every group the model offers, plus what a user needs to read them."""

    groups: dict[str, ParamGroup]
    n_layers: int
    layer_range: tuple[int, int]  # inclusive
    layers_path: str
    tied_embeddings: bool

    def select(self, names: list[str]) -> list[ParamGroup]:
        return [self.groups[n] for n in names]

    def union(self, names: list[str]) -> list[tuple[str, nn.Parameter]]:
        """The degradable subset of a sweep: each parameter once, in a fixed order."""
        seen: dict[str, nn.Parameter] = {}
        for g in self.select(names):
            for n, p in g.params:
                seen.setdefault(n, p)
        return list(seen.items())


def _decoder(model: nn.Module) -> nn.Module:
    get = getattr(model, "get_decoder", None)
    if callable(get):
        try:
            dec = get()
        except (AttributeError, NotImplementedError):
            dec = None
        if isinstance(dec, nn.Module):
            return dec
    return model


def _layer_stack(decoder: nn.Module) -> tuple[str, nn.ModuleList]:
    """The decoder's repeated blocks: `layers` where present, else the longest ModuleList."""
    layers = getattr(decoder, "layers", None)
    if isinstance(layers, nn.ModuleList) and len(layers):
        return "layers", layers
    lists = [
        (name, mod)
        for name, mod in decoder.named_modules()
        if isinstance(mod, nn.ModuleList) and len(mod) and "vision" not in name
    ]
    if not lists:
        raise UserError(
            f"{type(decoder).__name__}: no decoder layer stack found (no ModuleList of blocks)"
        )
    return max(lists, key=lambda item: len(item[1]))


def _is_norm(module: nn.Module, leaf_name: str) -> bool:
    return "norm" in type(module).__name__.lower() or "norm" in leaf_name.lower()


def _section(param_path: str) -> str | None:
    """'attention' / 'mlp' / None for a parameter path inside one decoder layer."""
    parts = param_path.split(".")[:-1]
    if any(p in ATTENTION_NAMES for p in parts):
        return "attention"
    if any(p in MLP_NAMES for p in parts):
        return "mlp"
    return None


def discover_groups(
    model: nn.Module, layer_start: int = 0, layer_end: int | None = None
) -> ModelGroups:
    """Groups attention / mlp / embedding / all for any decoder model in transformers."""
    full_name = {id(p): n for n, p in model.named_parameters()}
    decoder = _decoder(model)
    stack_name, stack = _layer_stack(decoder)
    n_layers = len(stack)
    last = n_layers - 1 if layer_end is None else layer_end
    if layer_start > n_layers - 1:
        raise UserError(
            f"layer_start: {layer_start} is beyond the model's {n_layers} decoder layers (0..{n_layers - 1})"
        )
    if last > n_layers - 1:
        raise UserError(
            f"layer_end: {last} is beyond the model's {n_layers} decoder layers (0..{n_layers - 1})"
        )

    groups = {name: ParamGroup(name) for name in ("attention", "mlp", "embedding", "all")}
    for i in range(layer_start, last + 1):
        layer = stack[i]
        found = set()
        for pname, p in layer.named_parameters():
            mod_path = pname.rpartition(".")[0]
            owner = layer.get_submodule(mod_path) if mod_path else layer
            section = _section(pname)
            if section is None or _is_norm(owner, mod_path.rpartition(".")[2]):
                continue
            groups[section].params.append((full_name[id(p)], p))
            found.add(section)
        if found != {"attention", "mlp"}:
            missing = sorted({"attention", "mlp"} - found)
            raise UserError(
                f"{type(layer).__name__} (layer {i}): no {' or '.join(missing)} submodule found; "
                f"expected children named one of {sorted(ATTENTION_NAMES | MLP_NAMES)}"
            )

    emb = model.get_input_embeddings()
    out = model.get_output_embeddings()
    tied = out is not None and out.weight is emb.weight
    groups["embedding"].params.append((full_name[id(emb.weight)], emb.weight))
    if tied:
        groups["embedding"].notes.append(
            f"tied: {full_name[id(emb.weight)]} is also the output head (lm_head)"
        )
    elif out is not None and id(out.weight) in full_name:
        groups["embedding"].params.append((full_name[id(out.weight)], out.weight))
        groups["embedding"].notes.append(
            "untied: input embedding and output head (lm_head) both degraded"
        )

    seen: set[int] = set()
    for name in ("attention", "mlp", "embedding"):
        for n, p in groups[name].params:
            if id(p) not in seen:
                seen.add(id(p))
                groups["all"].params.append((n, p))
    groups["all"].notes.append("attention + mlp + embedding (norms excluded)")
    prefix = next((n for n, m in model.named_modules() if m is stack), stack_name)
    return ModelGroups(groups, n_layers, (layer_start, last), prefix, tied)


def quantized_params(params: list[tuple[str, nn.Parameter]]) -> list[str]:
    """Names of parameters stored as packed integers (4-bit): arithmetic on them is meaningless."""
    return [n for n, p in params if not torch.is_floating_point(p)]
