"""A mixture of trained members sampled as one model: which member draws what, the file that
ships it, and how ``molgan.sample`` / ``molgan.load`` / the scripts treat it."""

import dataclasses

import pytest
import torch
from conftest import script_module

import molgan
from molgan import checkpoint, mixture
from molgan.models import MolGAN
from molgan.population import Population
from molgan.presets import make_config


def _model(seed: int, **changes) -> MolGAN:
    """An untrained debug model (its graphs are rarely molecules)."""
    torch.manual_seed(seed)
    cfg = dataclasses.replace(make_config("debug"), seed=seed, **changes)
    return MolGAN.from_config(cfg)


def _trained(seed: int) -> MolGAN:
    """The shipped model's first member with its sampler's weights nudged by seeded noise:
    members that make valid, different molecules."""
    model = checkpoint.load(member=0)
    model.config["seed"] = seed
    noise = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.sampler.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=noise))
    return model


@pytest.fixture(scope="module")
def members():
    return [_trained(0), _trained(1), _trained(2)]


def _population(path, models):
    """A population checkpoint of ``models`` (as ``--members K`` writes it)."""
    population = Population(models)
    population.config = dict(models[0].config, members=len(models), seed=0)
    return checkpoint.save(path, population, {}, step=7)


@pytest.fixture
def population_ckpt(tmp_path, members):
    return _population(tmp_path / "pop.pt", members)


def test_sample_i_comes_from_member_i_mod_k_with_its_own_seeded_stream(members):
    out = mixture.Mixture(members).sample(20, seed=4, strict=False)
    assert sum(s is not None for s in out) > 10  # molecules, not only failed graphs
    for k, member in enumerate(members):
        alone = member.sample(len(range(k, 20, 3)), mixture.member_seed(4, k), strict=False)
        assert out[k::3] == alone
    assert out.lenient[1::3] == members[1].sample(7, mixture.member_seed(4, 1)).lenient


def test_members_draw_different_streams_and_a_seed_fixes_the_sample(members):
    seeds = {mixture.member_seed(4, k) for k in range(3)}
    assert len(seeds) == 3 and all(0 <= s < 2**63 for s in seeds)
    same = mixture.Mixture([members[0]] * 2).sample(40, seed=1)
    assert sum(s is not None for s in same) > 20
    assert same[0::2] != same[1::2]  # one model twice: two streams, not one molecule twice
    assert mixture.Mixture(members).sample(30, seed=9) == mixture.Mixture(members).sample(
        30, seed=9
    )


def test_the_sample_does_not_depend_on_the_batch_size(members):
    mix = mixture.Mixture(members)
    whole = mix.sample(25, seed=2, strict=False)
    assert mix.sample(25, seed=2, strict=False, batch_size=4) == whole
    pieces = list(mix.iter_samples(25, seed=2, strict=False, batch_size=6))
    assert [len(p) for p in pieces] == [6, 6, 6, 6, 1]  # consecutive pieces of ~batch_size
    assert [s for p in pieces for s in p] == whole


def test_fewer_molecules_than_members_and_zero_work(members):
    mix = mixture.Mixture(members)
    assert len(mix.sample(2, seed=0)) == 2
    assert mix.sample(0, seed=0) == []
    with pytest.raises(ValueError, match="n must be"):
        mix.sample(-1, seed=0)


def test_members_of_another_vocabulary_or_size_are_refused_in_one_line(members):
    other = _model(3, max_atoms=members[0].config["max_atoms"] + 1)
    with pytest.raises(ValueError, match="member 1 has another vocabulary or graph size"):
        mixture.Mixture([members[0], other])
    with pytest.raises(ValueError, match="at least one member"):
        mixture.Mixture([])


def test_an_exported_mixture_samples_as_its_members_did_and_keeps_only_samplers(
    tmp_path, population_ckpt, members
):
    out = mixture.export([(population_ckpt, k) for k in range(3)], tmp_path / "mix.pt")
    blob = checkpoint.read(out)
    assert blob["mixture"] and blob["sampler_only"] and "discriminator" not in blob
    assert [m["config"]["seed"] for m in blob["members"]] == [0, 1, 2]
    loaded = molgan.load(out)  # a mixture file loads as its mixture
    assert isinstance(loaded, mixture.Mixture) and len(loaded) == 3
    expected = mixture.Mixture(members).sample(30, seed=5)
    assert loaded.sample(30, seed=5) == expected
    assert molgan.sample(30, out, seed=5) == expected  # and samples as one by default
    single = molgan.load(out, member=2)  # one member alone, an ordinary MolGAN
    assert isinstance(single, MolGAN) and single.config["seed"] == 2
    assert single.sample(10, seed=1) == members[2].sample(10, seed=1)
    assert out.stat().st_size < population_ckpt.stat().st_size / 2
    with pytest.raises(ValueError, match="cannot be resumed"):
        checkpoint.resume_config(blob, make_config("debug"))


def test_a_compact_mixture_is_under_half_the_size_and_samples_nearly_the_same(
    tmp_path, population_ckpt, members
):
    """Half precision and a folded edge head: the shipped files' storage. The logits move by
    float rounding only, so a seeded sample is the same but for near-ties."""
    chosen = [(population_ckpt, k) for k in range(3)]
    full = mixture.export(chosen, tmp_path / "full.pt")
    small = mixture.export(chosen, tmp_path / "small.pt", compact=True)
    assert small.stat().st_size < full.stat().st_size / 2.5  # N = 9: 36 of 81 pairs kept
    assert checkpoint.read(small)["generator"]["edge_head.weight"].dtype == torch.float16
    a, b = molgan.load(full), molgan.load(small)
    z = torch.randn(16, a.members[0].sampler.body[0].in_features)
    exact, rounded = a.members[1].sampler(z), b.members[1].sampler(z)
    assert torch.allclose(exact.x_logits, rounded.x_logits, rtol=2e-3, atol=1e-2)
    off = ~torch.eye(exact.adj_logits.shape[1], dtype=torch.bool)  # diagonal: "no bond"
    assert torch.allclose(
        exact.adj_logits[:, off], rounded.adj_logits[:, off], rtol=2e-3, atol=1e-2
    )
    same = sum(x == y for x, y in zip(a.sample(300, seed=2), b.sample(300, seed=2), strict=True))
    assert same >= 290


def test_members_of_several_files_export_with_their_own_settings(tmp_path, members):
    plain = _model(7, ema=0.0)  # no EMA: G itself samples
    a = checkpoint.save(tmp_path / "a.pt", _model(0))
    b = checkpoint.save(tmp_path / "b.pt", plain)
    out = mixture.export([(a, 0), (b, 0)], tmp_path / "mix.pt")
    loaded = molgan.load(out)
    assert [m.config["seed"] for m in loaded.members] == [0, 7]
    assert [m.config["ema"] for m in loaded.members] == [_model(0).config["ema"], 0.0]
    graphs = [
        m.sample_graphs(6, generator=torch.Generator().manual_seed(1)) for m in loaded.members
    ]
    again = [
        m.sample_graphs(6, generator=torch.Generator().manual_seed(1)) for m in (_model(0), plain)
    ]
    for (atoms, bonds), (atoms2, bonds2) in zip(graphs, again, strict=True):
        assert (atoms == atoms2).all() and (bonds == bonds2).all()


def test_sample_takes_a_population_as_one_mixture_only_when_asked(population_ckpt, members):
    assert molgan.sample(9, population_ckpt, seed=1) == members[0].sample(9, seed=1)
    as_one = molgan.sample(9, population_ckpt, seed=1, mixture=True)
    assert as_one == mixture.Mixture(members).sample(9, seed=1)
    with pytest.raises(ValueError, match="not both"):
        molgan.sample(9, population_ckpt, seed=1, mixture=True, member=1)


def test_the_sample_script_writes_a_mixture_files_molecules(tmp_path, population_ckpt, members):
    mix = mixture.export([(population_ckpt, k) for k in range(3)], tmp_path / "mix.pt")
    expected = mixture.Mixture(members).sample(12, seed=3).lenient
    script = script_module("sample")
    for source, flags in ((mix, []), (population_ckpt, ["--mixture"])):
        out = tmp_path / f"{source.stem}.smi"
        args = ["-n", "12", "--seed", "3", "--out", str(out), "--checkpoint", str(source)]
        assert script.main([*args, *flags]) == 0
        assert [line or None for line in out.read_text().split("\n")[:12]] == expected


def test_sample_graphs_interleave_the_members_graphs(members):
    atoms, bonds = mixture.Mixture(members).sample_graphs(
        10, generator=torch.Generator().manual_seed(5)
    )
    seeds = torch.randint(0, 2**62, (3,), generator=torch.Generator().manual_seed(5)).tolist()
    for k, member in enumerate(members):
        own = torch.Generator().manual_seed(seeds[k])
        a, b = member.sample_graphs(len(range(k, 10, 3)), generator=own)
        assert (atoms[k::3] == a).all() and (bonds[k::3] == b).all()
    assert mixture.Mixture(members).class_prior is members[0].class_prior


def test_make_mixture_writes_a_file_once_and_refuses_to_overwrite_it(
    tmp_path, population_ckpt, members, capsys
):
    script = script_module("make_mixture")
    out = tmp_path / "mix.pt"
    assert script.main([f"{population_ckpt}:2,0", "--out", str(out)]) == 0
    assert "a mixture of 2 members" in capsys.readouterr().out
    expected = mixture.Mixture([members[2], members[0]]).sample(10, seed=0)
    assert molgan.sample(10, out, seed=0) == expected
    before = out.read_bytes()
    assert script.main([str(population_ckpt), "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err and out.read_bytes() == before
    assert script.main([f"{population_ckpt}:5", "--out", str(tmp_path / "x.pt")]) == 2
    assert "has members 0..2" in capsys.readouterr().err
