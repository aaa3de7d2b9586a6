"""MolGAN networks: the WGAN discriminator, the reward network and the ``MolGAN`` container.

The discriminator (unbounded output) and the reward net (sigmoid output, the DDPG-style critic
of the RL term) share one architecture with separate parameters: relational GCN -> gated
aggregation -> MLP -> Linear(1) (paper §3, Fig. 2). The generator (actor) and what D sees of
its output are in ``molgan.generator``; ``MolGAN`` holds all three nets and samples.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from molgan import chem, conditioning, decoding
from molgan.config import Config
from molgan.generator import Generator
from molgan.layers import GraphAggregation, RelationalGraphConv, mlp


class GraphEncoder(nn.Module):
    """Relational GCN stack (tanh) -> gated aggregation -> MLP (tanh) -> Linear(1).

    As in the official code the raw node one-hot is concatenated back to the hidden state
    before every layer after the first and before aggregation.

    Args:
        num_atom_types: T.
        num_bond_types: R (channel 0 ignored).
        conv_dims: R-GCN output sizes, e.g. (64, 32).
        agg_dim: aggregation size.
        head_dims: MLP sizes after aggregation, e.g. (128,).
        dropout: dropout after each layer.
        normalize: degree normalisation in the R-GCN layers.
        cond_dim: length C of a class vector appended to the graph embedding (0 = none).
    """

    def __init__(
        self,
        num_atom_types: int,
        num_bond_types: int,
        conv_dims: tuple[int, ...],
        agg_dim: int,
        head_dims: tuple[int, ...],
        dropout: float = 0.0,
        normalize: bool = False,
        cond_dim: int = 0,
    ) -> None:
        super().__init__()
        self.cond_dim = cond_dim
        dims_in = [num_atom_types] + [d + num_atom_types for d in conv_dims[:-1]]
        self.convs = nn.ModuleList(
            RelationalGraphConv(d_in, d_out, num_bond_types, normalize)
            for d_in, d_out in zip(dims_in, conv_dims, strict=False)
        )
        self.aggregate = GraphAggregation(conv_dims[-1] + num_atom_types, agg_dim)
        self.head = mlp((agg_dim + cond_dim, *head_dims), dropout)
        self.out = nn.Linear(head_dims[-1] if head_dims else agg_dim + cond_dim, 1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def features(
        self, x: torch.Tensor, adj: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, N, T), adj (B, N, N, R) [, class vectors cond (B, C)] -> (B, F) features
        before the final Linear."""
        h = x
        for i, conv in enumerate(self.convs):
            h = self.dropout(torch.tanh(conv(h if i == 0 else torch.cat([h, x], -1), adj)))
        hx = torch.cat([h, x], dim=-1)  # (B, N, F + T)
        g = self.dropout(self.aggregate(hx))  # (B, agg_dim)
        g = g if cond is None else torch.cat([g, cond], dim=-1)  # (B, agg_dim [+ C])
        return self.head(g)  # (B, F)

    def forward(
        self, x: torch.Tensor, adj: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, N, T), adj (B, N, N, R) [, cond (B, C)] -> (B, 1) unbounded score."""
        return self.out(self.features(x, adj, cond))  # (B, 1)


class Discriminator(GraphEncoder):
    """The WGAN critic D(x, adj) -> (B, 1), unbounded."""


class RewardNet(GraphEncoder):
    """The reward network V(x, adj) -> (B, 1) in (0, 1): predicts the RDKit reward (RL critic)."""

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(super().forward(x, adj))


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` -> cuda if available else cpu; anything else as given, checked.

    Raises:
        ValueError: an unknown device, or CUDA/MPS asked for where it is not available.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str):
        raise ValueError(f"device must be a string such as 'cpu' or 'cuda', got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for but CUDA is not available")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} asked for but MPS is not available")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {name!r}; use cpu, cuda, cuda:N or auto")
    return device


class MolGAN(nn.Module):
    """Container of the three networks plus the settings and vocabulary to rebuild them.

    Args:
        config: ``dataclasses.asdict`` of a ``Config`` (plain dict, so checkpoints stay
            ``weights_only``-loadable).
        atom_types: atom vocabulary, index 0 = pad.
        bond_types: bond vocabulary, index 0 = no bond.
    """

    def __init__(self, config: dict, atom_types: tuple[str, ...], bond_types: tuple[str, ...]):
        super().__init__()
        cfg = Config.from_dict(config)  # stored settings: defaults for keys older files lack
        self.config = dataclasses.asdict(cfg)
        self.atom_types, self.bond_types = tuple(atom_types), tuple(bond_types)
        T, R = len(self.atom_types), len(self.bond_types)
        encoder = dict(
            num_atom_types=T,
            num_bond_types=R,
            conv_dims=cfg.conv_dims,
            agg_dim=cfg.agg_dim,
            head_dims=cfg.head_dims,
            dropout=cfg.dropout,
            normalize=cfg.normalize_conv,
        )
        # A conditional model (``condition``): G and D see a coarse class of the molecule,
        # sampled from the training frequencies in ``class_prior`` (molgan.conditioning).
        self.class_prior = None
        cond_dim = 0
        if cfg.condition:
            self.class_prior = conditioning.ClassPrior(cfg.max_atoms, T)
            cond_dim = conditioning.class_dim(cfg.max_atoms, T)
        self.generator = Generator(
            cfg.z_dim, cfg.gen_dims, cfg.max_atoms, T, R, cfg.dropout, cond_dim, cfg.size_mask
        )
        self.discriminator = Discriminator(**encoder, cond_dim=cond_dim)
        self.reward_net = RewardNet(**encoder)
        # An exponential moving average of G's weights (SPECTRE: 0.995) samples and evaluates
        # when ``ema`` > 0; training updates G itself. Off in the paper's setting.
        self.generator_ema = None
        if cfg.ema > 0:
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """generator_ema ← decay · generator_ema + (1 - decay) · generator (no-op without EMA)."""
        if self.generator_ema is None:
            return
        for ema, live in zip(
            self.generator_ema.parameters(), self.generator.parameters(), strict=True
        ):
            ema.lerp_(live, 1.0 - decay)

    @property
    def sampler(self) -> Generator:
        """The generator that samples: the EMA copy when there is one."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    @classmethod
    def from_config(cls, cfg, atom_types=None, bond_types=None) -> MolGAN:
        """Build from a ``Config`` (the one place config fields meet layer arguments)."""
        return cls(
            dataclasses.asdict(cfg), atom_types or chem.ATOM_TYPES, bond_types or chem.BOND_TYPES
        )

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def class_request(
        self, heavy_atoms: int | None = None, elements: str | Sequence[str] | None = None
    ) -> dict:
        """``conditioning.class_request`` for this model (``{}`` when nothing is asked).

        Raises:
            ValueError: the model is not conditional, or a bad or absent class.
        """
        if heavy_atoms is None and elements is None:
            return {}
        return conditioning.class_request(self.class_prior, self.atom_types, heavy_atoms, elements)

    def sample_graphs(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        batch_size: int = 4096,
        temperature: float | tuple[float, float] = 1.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """All of ``decoding.graph_batches`` at once: ``(atoms (n, N), bonds (n, N, N))``."""
        parts = list(
            decoding.graph_batches(
                self, n, generator=generator, batch_size=batch_size, temperature=temperature
            )
        )
        if not parts:
            N = self.generator.N
            return np.zeros((0, N), np.int64), np.zeros((0, N, N), np.int64)
        return np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts])

    def sample(
        self,
        n: int,
        seed: int | None = None,
        *,
        strict: bool = True,
        batch_size: int = 4096,
        heavy_atoms: int | None = None,
        elements: str | Sequence[str] | None = None,
        progress: bool | None = None,
        temperature: float | tuple[float, float] = 1.0,
        correct: bool = False,
    ) -> chem.Samples:
        """``n`` canonical SMILES (``None`` where a graph is not a valid molecule).

        Args:
            n: number of molecules.
            seed: makes the result deterministic; ``None`` draws a fresh seed.
            strict: count multi-fragment graphs as invalid (else return their dotted SMILES).
            batch_size: graphs generated per forward pass.
            heavy_atoms, elements: a conditional model (``--condition``) is asked only for
                this heavy-atom count and/or exactly this element set (``"C,O,F"``); G follows
                the request for most graphs, not all (docs/ablation.md).
            progress: a progress bar on stderr; default: for 100,000 molecules or more when
                stderr is a terminal (as ``scripts/sample.py`` shows).
            temperature: sample each atom and bond from softmax(logits / temperature): above 1
                more distinct molecules and fewer valid ones (docs/remedies.md); 1 = G's own
                distribution; a pair ``(atoms, bonds)`` scales the two separately.
            correct: each graph's molecule after valency correction (MoFlow's; the largest
                fragment), counted by ``molgan.evaluate`` as ``valid_corrected``, never as
                strict validity.

        Returns:
            A list (``chem.Samples``) that also keeps each graph's multi-fragment SMILES, so
            that ``molgan.evaluate`` reports the lenient validity of strict samples correctly.
        """
        decoding.check_n(n)
        parts = decoding.iter_samples(
            self,
            n,
            seed,
            strict=strict,
            batch_size=batch_size,
            heavy_atoms=heavy_atoms,
            elements=elements,
            temperature=temperature,
            correct=correct,
        )
        return chem.Samples.concat(list(decoding.with_progress(parts, n, progress)), strict=strict)
