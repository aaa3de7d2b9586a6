"""All training settings in one flat dataclass (presets: ``molgan.presets``; removed settings:
``molgan.removed``; the command line: ``molgan.cli``).

Defaults are the paper's QM9 settings (spec §2.1): z 32, generator [128, 256, 512], R-GCN
[64, 32], aggregation 128, head [128], Adam 1e-3, batch 32, n_critic 5, 30 epochs, WGAN-only
warm-up for the first half. ``--help`` text comes from the attribute docstrings below.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from molgan.removed import REMOVED, check_removed, removed_message

# Scalar settings that may differ between the members of a population (``member_settings``):
# each enters its member's loss as a weight, so a (K,) tensor of them is exact. Architecture,
# batch, data, optimiser and schedule are shared.
MEMBER_SETTINGS = (
    "lam",
    "mode_seeking",
    "valence",
    "overflow",
    "isolated",
    "spanning",
    "composition",
    "gp_weight",
    "energy",
)
MEMBER_SEED = "seed"  # member_settings may also give each member its own seed (default seed + k)
MAX_ATOMS_LIMIT = 40  # dense graphs cost N² per molecule; ZINC's largest molecule has 38 atoms
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
MAX_MEMBERS = 4096
_ATOM_TYPE = re.compile(r"[A-Z][a-z]?([+-][0-9]*)?")  # an element and its charge: C, N+, Fe+2
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.,=+-]*")


@dataclass
class Config:
    # --- data ---
    data: str = ""
    """Molecule file (.smi/.csv/.sdf, optionally .gz); empty = the shipped QM9."""
    max_atoms: int = 9
    """N, graph nodes = max heavy atoms per molecule."""
    split_seed: int = 0
    """Seed of the fixed 80/10/10 train/val/test split."""
    atoms: str = ""
    """Atom vocabulary: qm9 (C, N, O, F, no charges) | auto (each element-and-charge type in
    at least atoms_min_count molecules, e.g. C,N,O,S,Cl,N+,O-) | a list such as C,N,O,N+,O-;
    '' = qm9 for the shipped QM9, auto for --data."""
    atoms_min_count: int = 10
    """With atoms auto: molecules with a type rarer than this are dropped (and counted)."""
    # --- model ---
    z_dim: int = 32
    """Latent size Z (paper 32; the official example uses 8)."""
    gen_dims: tuple[int, ...] = (128, 256, 512)
    """Generator MLP hidden sizes (tanh)."""
    conv_dims: tuple[int, ...] = (64, 32)
    """R-GCN layer sizes of the discriminator and reward net (paper [64, 32])."""
    agg_dim: int = 128
    """Size of the gated graph aggregation."""
    head_dims: tuple[int, ...] = (128,)
    """MLP after aggregation, before the final Linear(1)."""
    dropout: float = 0.0
    """Dropout in all three nets."""
    normalize_conv: bool = False
    """Divide R-GCN messages by the degree (paper Eq. 1); off = official code."""
    marginal_init: bool = False
    """G starts at the data: its output biases are the log-frequencies of each node's atom type
    and each pair's bond type in the training split (DiGress's marginal prior). Without it G's
    first graphs are dense random ones, which the valence terms thin out by dropping every
    double bond for good at N = 27 (docs/results.md, issue 42)."""
    pretrain: int = 0
    """G first learns to decode the training graphs as a VAE's decoder for this many steps of
    128 graphs (an MLP encoder, dropped afterwards), and adversarial training starts from there
    (molgan.pretrain). 0 = off."""
    pretrain_beta: float = 0.1
    """With pretrain: the weight of the VAE's KL term (per atom or pair variable); 0.1 made
    more valid molecules than 1 (docs/ablation.md)."""
    mode: str = "softmax"
    """What D and the reward net see of the generator: softmax | gumbel | hard_gumbel."""
    tau: float = 1.0
    """Softmax / Gumbel-softmax temperature."""
    # --- optimisation ---
    lr: float = 1e-3
    """Adam learning rate of all three nets."""
    batch_size: int = 32
    """Molecules per step."""
    epochs: float = 30.0
    """Passes over the training split (one step = one batch)."""
    max_steps: int = 0
    """Stop after this many steps (0 = use epochs)."""
    n_critic: int = 5
    """One generator (and reward-net) step every n_critic discriminator steps."""
    gp_weight: float = 10.0
    """Gradient-penalty weight of WGAN-GP."""
    # --- RL ---
    lam: float = 0.9
    """λ: generator loss = λ·WGAN + (1-λ)·RL after warm-up; 1 = no RL (and no RDKit calls)."""
    reward: str = "qed"
    """Reward: product of normalised scores, e.g. qed | sa | logp | qed,sa | all."""
    rl_start: float = 0.5
    """Fraction of training before the RL term is switched on (paper: half)."""
    scale_rl: bool = True
    """Scale the RL term by α = |L_WGAN / L_RL| (detached), as the official code."""
    alpha_eps: float = 1e-2
    """Lower clamp of |L_RL| in α's denominator (the official code has none and can blow up)."""
    reward_tilt: float = 0.0
    """Draw training molecules with weight exp(β · their reward) (the ``reward`` spec), so the
    data D sees leans toward high reward and G learns a spread of high-reward molecules, not one
    (weighted retraining, Tripp et al. 2020); with or without RL. 0 = off."""
    # --- mode-collapse remedies: all off in the paper's setting (docs/ablation.md) ---
    gp_per_sample: bool = False
    """Gradient-penalty norm over each whole sample (standard WGAN-GP), not per node and edge."""
    ema: float = 0.0
    """Sample and evaluate with an EMA of G's weights of this decay (e.g. 0.995); 0 = off."""
    lr_d: float = 0.0
    """Adam learning rate of D (0 = lr)."""
    beta1: float = 0.9
    """Adam β1 of all nets (WGAN-GP setups often use 0.5 or 0)."""
    beta2: float = 0.999
    """Adam β2 of all nets (WGAN-GP setups often use 0.9)."""
    mode_seeking: float = 0.0
    """Weight of the mode-seeking term on G: 1 / (output distance / latent distance) (MSGAN)."""
    valence: float = 0.0
    """Weight of a penalty on G's soft bond orders above each atom's valence (a validity signal
    without RL or RDKit; molgan.losses.valence_excess)."""
    overflow: float = 0.0
    """Weight of a penalty on the expected over-valent atoms in G's sampled graphs, each bond
    drawn from its softmax (molgan.losses.valence_overflow): unlike valence, it sees the risk
    of uncertain bonds."""
    isolated: float = 0.0
    """Weight of a penalty on G's expected atoms without a bond (molgan.losses.isolated_atoms):
    the valence penalty is zero on a graph without bonds, this one is largest there."""
    spanning: float = 0.0
    """Weight of a penalty on G's expected bonds between atoms falling short of atoms - 1, the
    fewest a molecule in one piece has (molgan.losses.bond_shortfall)."""
    condition: bool = False
    """G and D see a coarse class (heavy-atom count, elements held) drawn from the data's own
    frequencies, so that no class can be dropped (molgan.conditioning)."""
    composition: float = 0.0
    """Weight of a penalty on the gap between the mean atoms of each element per graph in G's
    batch and in the real batch (molgan.losses.composition_gap): keeps the valence terms from
    filling graphs with the elements that hold the most bonds."""
    size_mask: bool = False
    """With condition: G makes exactly the heavy-atom count its class asks for (nodes past it
    are pads without bonds, as in the data), so the size comes from the data's frequencies,
    not from G (DiGress samples N first)."""
    condition_balance: float = 0.0
    """With condition: draw training molecules with weight freq(class)^-b, so rare classes
    (small molecules, fluorine) reach D and G more often (0 = data order, 1 = every class
    equally often); sampling still draws classes with the data's own frequencies."""
    energy: float = 0.0
    """Weight of an energy-distance term on G between its batch and the real batch
    (molgan.losses.energy_distance; EGO's objective beside the adversarial loss): matches the
    data's spread, not only its location. 0 = off."""
    # --- population ---
    members: int = 1
    """Train this many MolGANs in lockstep in one process (a population; member k has seed
    seed + k: its own weights, data order and noise). Much faster per model than separate
    runs, on a GPU above all (docs/speed.md)."""
    member_settings: dict[str, tuple] = field(default_factory=dict)
    """Per-member values of lam, gp_weight or a generator term's weight (mode_seeking,
    valence, isolated, spanning, composition, energy), one per member: {"lam": (0.9, 0.8)}, on
    the command line 'lam=0.9,0.8;valence=5,0' (others take the shared value); seed (0, 7)
    gives each member its own seed instead of seed + k."""
    # --- run ---
    seed: int = 0
    """Seed of weights, noise and data order (member k of a population: seed + k)."""
    device: str = "auto"
    """auto (cuda if available) | cpu | cuda | cuda:N."""
    threads: int = 1
    """torch CPU threads of this run; 0 = all cores (1 is as fast as 2 here, and robust to load)."""
    cuda_graphs: bool = True
    """On CUDA, record each training step in a CUDA graph and replay it (a step is launch-bound:
    several times faster); ignored on the CPU and with compile."""
    compile: bool = False
    """torch.compile G, D and V for training (~30 s of compiling up front; the GP stays eager)."""
    out_dir: str = "runs"
    """Parent folder of run directories."""
    name: str = ""
    """Run directory name (default: <preset>-seed<seed>)."""
    log_every: int = 200
    """Steps between log lines."""
    eval_every: int = 0
    """Steps between evaluations and checkpoints (0 = once per epoch)."""
    eval_samples: int = 5000
    """Molecules sampled per evaluation."""
    eval_fcd: bool = False
    """Add FCD vs the val split to each evaluation (2-core CPU: ~30 s each, ~80 s once more)."""
    best_metric: str = "valid*unique"
    """Keep the best evaluation's checkpoint by this metric or product as best.pt ('' = off)."""
    ckpt_minutes: float = 5.0
    """Also write the checkpoint every this many minutes of training (0 = only at evaluations)."""
    early_stop_unique: float = 0.0
    """Stop when uniqueness drops below this after the warm-up (paper: 0.02); 0 = off."""
    time_limit: float = 0.0
    """Stop (with a final evaluation and checkpoint) after this many minutes; 0 = none."""
    resume: bool = False
    """Continue the run in out_dir/name from its checkpoint."""
    progress: bool = True
    """Show a progress bar."""
    preset: str = field(default="paper", metadata={"cli": False})
    """Preset these settings started from."""

    def __post_init__(self) -> None:
        self._check_types()
        if not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"lam must be in [0, 1], got {self.lam}")
        if not 0.0 <= self.rl_start <= 1.0:
            raise ValueError(f"rl_start must be in [0, 1], got {self.rl_start}")
        if self.mode not in ("softmax", "gumbel", "hard_gumbel"):
            raise ValueError(f"mode must be softmax, gumbel or hard_gumbel, got {self.mode!r}")
        positive = (
            "max_atoms",
            "z_dim",
            "agg_dim",
            "batch_size",
            "n_critic",
            "eval_samples",
        )
        for name in (*positive, "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.max_atoms > MAX_ATOMS_LIMIT:
            raise ValueError(f"max_atoms must be ≤ {MAX_ATOMS_LIMIT}, got {self.max_atoms}")
        for name in (
            "max_steps",
            "eval_every",
            "threads",
            "seed",
            "split_seed",
            "atoms_min_count",
            "pretrain",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        for name in ("time_limit", "gp_weight", "early_stop_unique", "ckpt_minutes"):
            if not getattr(self, name) >= 0:  # also refuses NaN
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if self.early_stop_unique > 1:
            raise ValueError(
                f"early_stop_unique is a share of unique molecules in (0, 1] (0 = off), "
                f"got {self.early_stop_unique}"
            )
        if self.seed >= 2**32 or self.split_seed >= 2**32:
            raise ValueError("seed and split_seed must be < 2**32")
        if not self.gen_dims or not self.conv_dims:
            raise ValueError("gen_dims and conv_dims need at least one size each")
        for name in ("gen_dims", "conv_dims", "head_dims"):
            if any(v < 1 for v in getattr(self, name)):
                raise ValueError(f"{name} sizes must be ≥ 1, got {getattr(self, name)}")
        for name in ("lr", "tau", "epochs", "alpha_eps"):
            if not 0 < getattr(self, name) < float("inf"):
                raise ValueError(f"{name} must be positive and finite, got {getattr(self, name)}")
        for name in ("ema", "beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        for name in (
            "lr_d",
            "mode_seeking",
            "valence",
            "overflow",
            "isolated",
            "spanning",
            "composition",
            "reward_tilt",
            "energy",
            "pretrain_beta",
        ):
            if not 0 <= getattr(self, name) < float("inf"):
                raise ValueError(f"{name} must be ≥ 0 and finite, got {getattr(self, name)}")
        if self.atoms == "aromatic":  # issue 42's round 11: aromatic atom types
            raise ValueError(
                "atoms aromatic was removed (it lost: docs/ablation.md); the last commit that "
                "has it is 801c5fa"
            )
        if self.atoms not in ("", "qm9", "auto") and not all(
            _ATOM_TYPE.fullmatch(t.strip()) for t in self.atoms.split(",")
        ):
            raise ValueError(
                f"atoms must be qm9, auto or a list of atom types such as C,N,O,N+,O-,Cl; "
                f"got {self.atoms!r}"
            )
        if not 0.0 <= self.condition_balance <= 1.0:
            raise ValueError(f"condition_balance must be in [0, 1], got {self.condition_balance}")
        if self.condition_balance and not self.condition:
            raise ValueError("condition_balance needs condition (--condition)")
        if self.size_mask and not self.condition:
            raise ValueError("size_mask needs condition (--condition): the count is its class")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not _DEVICE.fullmatch(self.device):
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        if not 1 <= self.members <= MAX_MEMBERS:
            raise ValueError(f"members must be in [1, {MAX_MEMBERS}], got {self.members}")
        if self.seed + self.members > 2**32:
            raise ValueError("seed + members must be ≤ 2**32")
        self._check_members()
        if self.name and (not _NAME.fullmatch(self.name)):
            raise ValueError(
                f"name must be a plain folder name (letters, digits, _.,=+-), got {self.name!r}"
            )

    def _check_types(self) -> None:
        """Coerce ints to floats and sequences to tuples; refuse values of the wrong type."""
        for f in dataclasses.fields(self):
            if f.name == "member_settings":  # a mapping: _check_members
                continue
            value, kind = getattr(self, f.name), type(f.default)
            if kind is tuple and isinstance(value, (list, tuple)):
                if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                    raise ValueError(f"{f.name} must be a list of integers, got {value!r}")
                setattr(self, f.name, tuple(value))
            elif kind is float and isinstance(value, int) and not isinstance(value, bool):
                setattr(self, f.name, float(value))
            elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ValueError(f"{f.name} must be {kind.__name__}, got {value!r}")

    def _check_members(self) -> None:
        """Check ``member_settings`` (known names, one number per member, each member's values
        valid as a single run's) and coerce it to name -> tuple of float (seeds: int)."""
        if not isinstance(self.member_settings, dict):
            raise ValueError(
                f"member_settings must be a mapping such as {{'lam': (0.9, 0.8)}}, "
                f"got {self.member_settings!r}"
            )
        own = {}
        for name, values in self.member_settings.items():
            if name in REMOVED:
                raise ValueError(f"member_settings: {removed_message(name)}")
            if name not in (*MEMBER_SETTINGS, MEMBER_SEED):
                raise ValueError(
                    f"member_settings: {name!r} cannot differ between members; "
                    f"use {', '.join((*MEMBER_SETTINGS, MEMBER_SEED))}"
                )
            kind = int if name == MEMBER_SEED else float
            numbers = tuple(values) if isinstance(values, (list, tuple)) else (values,)
            if not all(_is_number(v, kind) for v in numbers):
                what = "an integer ≥ 0" if kind is int else "a finite number"
                raise ValueError(f"member_settings: {name} {values!r} holds a value not {what}")
            if len(numbers) != self.members:
                raise ValueError(
                    f"member_settings: {name} has {len(numbers)} values "
                    f"for {self.members} member(s)"
                )
            own[name] = tuple(kind(v) for v in numbers)
        self.member_settings = own
        for k in range(self.members) if own else ():
            self.member(k)  # each member's values are checked as a single run's

    def member(self, k: int) -> Config:
        """Member ``k`` of this population as a single run: its own seed (``seed`` + k, or its
        ``member_settings`` seed) and per-member values, ``members`` 1. The one place a
        member's settings are resolved."""
        own = {name: values[k] for name, values in self.member_settings.items()}
        single = {"members": 1, "member_settings": {}, "seed": self.seed + k}
        return dataclasses.replace(self, **(single | own))

    @classmethod
    def from_dict(cls, settings: dict, where: str = "settings") -> Config:
        """The ``Config`` of stored settings (a checkpoint's, a run's ``config.json``): keys an
        older version did not have take today's defaults; keys of removed settings at their
        "off" value are dropped, any other value of one is refused (``check_removed``).

        Raises:
            ValueError: one line naming ``where`` (invalid values, a removed setting).
        """
        check_removed(settings, where)
        known = {f.name for f in dataclasses.fields(cls)}
        settings = {k: v for k, v in settings.items() if k in known}
        try:
            if isinstance(settings.get("member_settings"), str):  # files before it was typed
                settings["member_settings"] = parse_member_settings(settings["member_settings"])
            return cls(**settings)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where} holds invalid settings: {err}") from None

    @property
    def run_name(self) -> str:
        return self.name or f"{self.preset}-seed{self.seed}"


def parse_member_settings(text: str) -> dict[str, tuple[float, ...]]:
    """The command line's form of ``member_settings``: 'lam=0.9,0.8;seed=0,7' ->
    {"lam": (0.9, 0.8), "seed": (0, 7)} (``Config`` checks names and counts).

    Raises:
        ValueError: a part that is not name=number,number,...
    """
    out: dict[str, tuple[float, ...]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, eq, values = part.partition("=")
        name = name.strip().replace("-", "_")
        try:
            if not eq:
                raise ValueError
            kind = int if name == MEMBER_SEED else float
            out[name] = tuple(kind(v) for v in values.split(","))
        except ValueError:
            raise ValueError(
                f"member_settings: {part!r} is not name=number,number,... "
                f"(e.g. 'lam=0.9,0.8;seed=0,7')"
            ) from None
    return out


def _is_number(value: object, kind: type) -> bool:
    """``value`` is a finite number usable as ``kind`` (seeds: a non-negative int)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if kind is int:
        return isinstance(value, int) and value >= 0
    return value == value and abs(value) != float("inf")
