"""The report tools of tools/ (not installed): run with ``python -m pytest -m tools``."""

import json
from pathlib import Path

import pytest
from conftest import script_module
from test_mixture import _model, _population
from test_scripts import run

import molgan

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.tools


@pytest.mark.slow  # 17 s: a study run end to end; the sweep tests pin the same machinery
def test_reproduce_runs_and_aggregates_on_the_debug_preset(tmp_path):
    out = run(
        "tools/reproduce.py",
        "--preset",
        "debug",
        "--objectives",
        "none",
        "qed",
        "--seeds",
        "0",
        "--samples",
        "40",
        "--no-fcd",
        "--out",
        tmp_path,
    )
    assert "no RL (λ=1), 1 seeds" in out.stdout and "RL on qed, 1 seeds" in out.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results["runs"]) == 2 and all(r["n"] == 40 for r in results["runs"])
    again = run(
        "tools/reproduce.py",
        "--preset",
        "debug",
        "--objectives",
        "none",
        "--seeds",
        "0",
        "--samples",
        "40",
        "--no-fcd",
        "--out",
        tmp_path,
    )
    assert "1 seeds" in again.stdout  # finished runs are reused, not retrained


def test_tradeoff_plot_finds_every_configuration_in_the_committed_studies(tmp_path):
    """Each configuration it names is a finished variant of a committed study table (a renamed
    variant would drop a point silently), and the default's point is the README's 3-seed row."""
    pytest.importorskip("matplotlib")
    import importlib.util
    import statistics

    path = ROOT / "tools/plot_tradeoff.py"
    spec = importlib.util.spec_from_file_location("plot_tradeoff", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    data = mod.points(ROOT / "sweeps")
    assert [(label, rl) for label, rl, *_ in data] == [(c[0], c[3]) for c in mod.CONFIGS]
    default = {rl: (v, u) for label, rl, v, u, _ in data if label == "latent (default)"}
    assert len(default[False][1]) == 3 and round(statistics.fmean(default[False][1]), 1) == 44.2
    assert round(statistics.fmean(default[True][0]), 1) == 95.0
    run("tools/plot_tradeoff.py", "--out", tmp_path / "t.png")
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_frontier_reads_uniqueness_off_the_temperature_curve_at_a_given_validity(tmp_path):
    points = [(1, 0.78, 0.38), (1, 0.82, 0.42), (2, 0.58, 0.62), (2, 0.62, 0.58)]
    rows = [  # two members: mean (valid, unique) (80, 40) at T 1 and (60, 60) at T 2
        {"member": k % 2, "temperature": t, "valid": v, "unique": u, "vun": 0.3 - 0.1 * t}
        for k, (t, v, u) in enumerate(points)
    ]
    path = tmp_path / "m.json"
    path.write_text(json.dumps(rows))
    out = run("tools/frontier.py", f"a={path}", "--at-valid", "0.7,0.9").stdout
    cells = [c.strip() for c in out.splitlines()[2].strip("|").split("|")]
    assert cells[:3] == ["a", "1–2", "1"]  # V.U.N. peaks at T 1 (20% against 10%)
    assert cells[3] == "80.0 ± 2.8" and cells[4] == "40.0 ± 2.8"
    assert cells[-2:] == ["50.0", ""]  # halfway between; 90% valid lies outside the curve
    one = run("tools/frontier.py", f"b={path}@1", "--at-valid", "0.7").stdout
    assert "| b | 1–2 | 1 | 82.0 ± 0.0 | 42.0 ± 0.0 |" in one  # member 1 alone
    bad = run("tools/frontier.py", "no-equals-sign", check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: expected NAME=path.json")
    bonds = tmp_path / "bonds.json"  # atoms at 1, bonds heated: a curve over the bonds' T
    bonds.write_text(json.dumps([r | {"temperature": 1, "bond_temperature": r["temperature"]}
                                 for r in rows]))  # fmt: skip
    assert (
        run("tools/frontier.py", f"d={bonds}")
        .stdout.splitlines()[2]
        .startswith("| d | 1–2 | 1 | 80.0 ± 2.8 |")
    )
    mixed = tmp_path / "mixed.json"  # atoms-only and uniform heating are two curves, not one
    mixed.write_text(json.dumps(rows + [rows[2] | {"bond_temperature": 1.0}]))
    bad = run("tools/frontier.py", f"c={mixed}", check=False)
    assert bad.returncode == 2 and "vary in both temperatures" in bad.stderr


def test_evaluate_members_scores_groups_of_k_as_mixtures(tmp_path, capsys):
    population_ckpt = _population(tmp_path / "pop.pt", [_model(0), _model(1), _model(2)])
    script = script_module("evaluate_members", "tools")
    assert script.main([str(population_ckpt), "--samples", "20", "--mixture", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "3 members are not groups of 2" in err
    assert script.main([str(population_ckpt), "--members", "0,x"]) == 2
    assert "--members must be member numbers like 0,2, got '0,x'" in capsys.readouterr().err
    out = tmp_path / "rows.json"
    args = [str(population_ckpt), "--samples", "20", "--mixture", "3", "--json", str(out)]
    assert script.main(args) == 0
    (row,) = json.loads(out.read_text())
    assert row["seeds"] == [0, 1, 2] and len(row["members"]) == 3
    assert len(row["distinct_by_member"]) == 3 and sum(row["distinct_by_member"]) >= row["distinct"]
    pairs = [f"{population_ckpt}:0,2", f"{population_ckpt}:1,2"]  # chosen members, in order
    assert script.main([*pairs, "--samples", "10", "--mixture", "2", "--json", str(out)]) == 0
    assert [r["seeds"] for r in json.loads(out.read_text())] == [[0, 2], [1, 2]]
    sampled = molgan.sample(20, population_ckpt, seed=10_000, mixture=True)
    assert row["valid"] == pytest.approx(sum(s is not None for s in sampled) / 20)
    args = [str(population_ckpt), "--members", "2", "--samples", "20", "--json", str(out)]
    assert script.main(args) == 0  # one member alone: its own seed, sampled at 10,000 + it
    (alone,) = json.loads(out.read_text())
    sampled = molgan.sample(20, population_ckpt, seed=10_002, member=2)
    assert alone["member"] == 2 and alone["seed"] == 2 and "step" in alone
    assert alone["valid"] == pytest.approx(sum(s is not None for s in sampled) / 20)


def test_moses_diagnose_counts_empty_bondless_and_overfull_graphs():
    import numpy as np

    from molgan import chem

    diagnose = script_module("moses_diagnose", "tools")
    atoms = np.array([[0, 0, 0], [4, 4, 0], [1, 1, 3], [1, 1, 0]])  # empty, F=F, CCO, C.C
    bonds = np.zeros((4, 3, 3), dtype=np.int64)
    bonds[1, 0, 1] = bonds[1, 1, 0] = 2
    bonds[2, 0, 1] = bonds[2, 1, 0] = bonds[2, 1, 2] = bonds[2, 2, 1] = 1
    stats = diagnose.graph_stats(atoms, bonds, chem.ATOM_TYPES)
    assert stats["atoms"] == 7 / 4 and stats["bonds"] == 3 / 4
    assert stats["empty"] == 1 / 4 and stats["no_bond"] == 1 / 4  # C.C
    assert stats["valid"] == 1 / 4 and stats["valid_lenient"] == 2 / 4  # CCO; and C.C
    assert stats["valid_corrected"] == 3 / 4  # F=F -> FF too; the empty graph is nothing
    assert stats["fragments"] == 3 / 2  # CCO 1, C.C 2
    assert stats["multiple"] == 1 / 4 and stats["rings"] == 0.0  # F=F; CCO has no ring
    assert stats["unique"] == 1.0 and stats["atom_tv"] is None
    share = diagnose.composition(atoms, len(chem.ATOM_TYPES))  # C 4, O 1, F 2 of 7 atoms
    assert share.tolist() == [4 / 7, 0.0, 1 / 7, 2 / 7]
    only_carbon = np.array([1.0, 0.0, 0.0, 0.0])
    tv = diagnose.graph_stats(atoms, bonds, chem.ATOM_TYPES, only_carbon)["atom_tv"]
    assert tv == pytest.approx(3 / 7)
    table = diagnose.summary([{"variant": "v", "steps": 5, "seed": s, **stats} for s in (0, 1)])
    assert "| v | 5 | 1 | 0,1 | 1.8 ± 0.0 |" in table


def test_moses_diagnose_fcd_reads_the_first_valid_molecules_and_needs_enough(monkeypatch):
    import numpy as np
    from rdkit import Chem

    from molgan import chem, fcd, moses_metrics

    diagnose = script_module("moses_diagnose", "tools")
    smiles = moses_metrics.moses_smiles("train", limit=12)
    types = ("*", "C", "N", "O", "F", "S", "Cl", "Br")
    graphs = [chem.mol_to_graph(Chem.MolFromSmiles(s), 27, types) for s in smiles]
    graphs = [g for g in graphs if g is not None][:10]

    class Model:  # samples the same ten molecules and one empty graph each time
        atom_types = types

        def sample_graphs(self, n, generator=None):
            atoms = np.stack([g[0] for g in graphs] + [np.zeros(27, np.int8)])
            return atoms, np.stack([g[1] for g in graphs] + [np.zeros((27, 27), np.int8)])

    monkeypatch.setattr(diagnose, "FCD_VALID", 15)  # 10 valid per draw: the second draw fills it
    reference = moses_metrics.reference_statistics("test")["FCD"]
    valid = [chem.graph_to_smiles(a, b, atom_types=types) for a, b in graphs]
    mu, sigma = fcd.statistics((valid * 2)[:15])
    expected = fcd.frechet_distance(mu, sigma, reference["mu"], reference["sigma"])
    assert diagnose.fcd_test(Model()) == pytest.approx(expected)
    assert diagnose.fcd_test(Model(), tries=1) is None  # 10 valid of 11: not enough


def test_decoder_probe_reproduces_a_few_moses_molecules_with_their_aromatic_rings(tmp_path):
    probe = script_module("decoder_probe", "tools")
    out = tmp_path / "probe.json"
    argv = ["--molecules", "40", "--steps", "300", "--samples", "50", "--json", str(out)]
    assert probe.main(argv) == 0
    rows = {row["reading"]: row for row in json.loads(out.read_text())["rows"]}
    assert rows["recon"]["exact"] > 0.8  # G, trained as a decoder, spells them back
    assert rows["recon"]["aromatic"] == pytest.approx(rows["data"]["aromatic"], abs=0.3)
    assert rows["gauss T=1"]["n"] == 50
