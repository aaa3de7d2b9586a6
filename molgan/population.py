"""A population: K MolGANs stacked along a leading member axis, trained in lockstep as one.

Every ``nn.Linear`` of a member's nets becomes a ``StackedLinear`` holding the K members' weights
as one (K, in, out) tensor (one batched matmul, ``baddbmm``, for all members); every other layer
already takes a leading axis (``molgan.layers``), so the population runs the single nets' own
forward code on (K, B, ...) inputs. One Adam over the stacked tensors is exactly K Adams (Adam
is elementwise), and the loss is the sum of the members' losses, so each member's gradient is
its own. ``stack`` and ``Population.member`` are the one converter between the two forms: a
member is an ordinary ``MolGAN`` (sampling, metrics, checkpoints and the shipped model do not
know populations).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from molgan.config import MEMBER_SETTINGS, Config
from molgan.models import MolGAN

__all__ = ["MEMBER_SETTINGS", "Population", "StackedLinear", "stack", "unstack"]


class StackedLinear(nn.Module):
    """K Linear maps at once: x (K, ..., in) -> (K, ..., out), member k with its own weights.

    Args:
        linears: the K members' ``nn.Linear`` layers (same sizes); their values are copied.
    """

    def __init__(self, linears: Sequence[nn.Linear]) -> None:
        super().__init__()
        first = linears[0]
        self.in_features, self.out_features = first.in_features, first.out_features
        weight = torch.stack([lin.weight.detach().t() for lin in linears])  # (K, in, out)
        self.weight = nn.Parameter(weight.contiguous())
        self.bias = None
        if first.bias is not None:
            bias = torch.stack([lin.bias.detach() for lin in linears])[:, None, :]  # (K, 1, out)
            self.bias = nn.Parameter(bias.contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        K = x.shape[0]
        flat = x.reshape(K, -1, x.shape[-1])  # (K, M, in)
        if self.bias is None:
            out = torch.bmm(flat, self.weight)  # (K, M, out)
        else:
            out = torch.baddbmm(self.bias, flat, self.weight)  # (K, M, out)
        return out.view(*x.shape[:-1], self.out_features)  # (K, ..., out)

    def extra_repr(self) -> str:
        return f"members={self.weight.shape[0]}, {self.in_features}, {self.out_features}"


def stack(modules: Sequence[nn.Module]) -> nn.Module:
    """One module computing all of ``modules`` (same class and sizes) on a leading member axis.

    Every ``nn.Linear`` is replaced by a ``StackedLinear`` of the members' layers; buffers are
    member 0's (they are constants such as the diagonal mask). The members are not changed.
    """
    out = copy.deepcopy(modules[0])
    for name, module in modules[0].named_modules():
        if isinstance(module, nn.Linear):
            stacked = StackedLinear([m.get_submodule(name) for m in modules])
            out.set_submodule(name, stacked.to(module.weight.device))
    return out


@torch.no_grad()
def unstack(stacked: nn.Module, template: nn.Module, k: int) -> nn.Module:
    """Member ``k`` of a ``stack``-ed module, written into ``template`` (a single module of the
    same structure, modified in place and returned)."""
    for name, module in template.named_modules():
        if isinstance(module, nn.Linear):
            source = stacked.get_submodule(name)
            module.weight.copy_(source.weight[k].t())
            if module.bias is not None:
                module.bias.copy_(source.bias[k, 0])
    return template


class Population(nn.Module):
    """K MolGANs of one architecture as stacked nets (``generator``, ``discriminator``,
    ``reward_net`` and, with ``ema``, ``generator_ema``), and the class prior they share.

    Args:
        models: the members, built from one config (their weights are copied).
    """

    def __init__(self, models: Sequence[MolGAN]) -> None:
        super().__init__()
        if not models:
            raise ValueError("a population needs at least one member")
        first = models[0]
        self.members = len(models)
        self.config = dict(first.config)
        self.atom_types, self.bond_types = first.atom_types, first.bond_types
        for net in ("generator", "discriminator", "reward_net"):
            setattr(self, net, stack([getattr(m, net) for m in models]))
        self.generator_ema = None
        if first.generator_ema is not None:
            self.generator_ema = stack([m.generator_ema for m in models]).requires_grad_(False)
        self.class_prior = copy.deepcopy(first.class_prior)  # same data: same frequencies

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """generator_ema ← decay · generator_ema + (1 - decay) · generator, every member."""
        MolGAN.update_ema(self, decay)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def member_config(self, k: int) -> dict:
        """The settings of member ``k`` as a single run (``Config.member``)."""
        return dataclasses.asdict(Config.from_dict(self.config).member(k))

    def member(self, k: int) -> MolGAN:
        """Member ``k`` as an ordinary ``MolGAN`` (a copy, on this population's device)."""
        if not 0 <= k < self.members:
            raise ValueError(f"member must be in [0, {self.members}), got {k}")
        with torch.random.fork_rng(devices=[]):  # building must not move the training RNG
            model = MolGAN(self.member_config(k), self.atom_types, self.bond_types)
        model = model.to(self.device)
        for net in ("generator", "discriminator", "reward_net", "generator_ema"):
            if getattr(model, net) is not None:
                unstack(getattr(self, net), getattr(model, net), k)
        if model.class_prior is not None:
            model.class_prior.load_state_dict(self.class_prior.state_dict())
        return model

    @torch.no_grad()
    def load_member(self, k: int, model: MolGAN) -> None:
        """Write ``model``'s weights into member ``k`` (the inverse of ``member``)."""
        for net in ("generator", "discriminator", "reward_net", "generator_ema"):
            stacked, single = getattr(self, net), getattr(model, net)
            if stacked is None:
                continue
            for name, module in single.named_modules():
                if isinstance(module, nn.Linear):
                    target = stacked.get_submodule(name)
                    target.weight[k].copy_(module.weight.t())
                    if module.bias is not None:
                        target.bias[k, 0].copy_(module.bias)


def member_state(stacked: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """Member ``k``'s single-net state dict from a stacked net's (every entry is a
    ``StackedLinear`` weight (K, in, out) or bias (K, 1, out))."""
    out = {}
    for key, value in stacked.items():
        out[key] = value[k].t().contiguous() if key.endswith("weight") else value[k, 0].clone()
    return out


class Freezer:
    """Keeps stopped members of a population exactly where they stopped (early stop, a
    non-finite loss) while the others train: ``restore`` after each update writes their saved
    weights back (one Adam moves every member; a zero gradient alone still moves by momentum)."""

    def __init__(self, population: Population) -> None:
        self.population = population
        self.saved: dict[int, list[torch.Tensor]] = {}

    @torch.no_grad()
    def freeze(self, k: int) -> None:
        if k not in self.saved:
            self.saved[k] = [p[k].clone() for p in self.population.parameters()]

    @torch.no_grad()
    def restore(self) -> None:
        for k, values in self.saved.items():
            for p, value in zip(self.population.parameters(), values, strict=True):
                p[k] = value
