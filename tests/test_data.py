import gzip

import pytest
import torch

from molgan.data import load_dataset, one_hot, split_indices
from molgan.molfiles import read_samples, read_smiles


def test_filter_counts_each_drop_reason(tiny_path, tmp_path, capsys):
    data = load_dataset(tiny_path, use_cache=False)
    assert len(data.smiles) == 30
    assert data.drops == {"unparsable SMILES": 1, "does not round-trip (charges/radicals)": 1}
    err = capsys.readouterr().err
    assert "qm9_tiny.smi:33: skipped malformed entry 'not_a_smiles'" in err
    assert "32 read, 30 kept" in err


def test_shapes_one_hot_symmetry_and_empty_diagonal(tiny_path):
    data = load_dataset(tiny_path, use_cache=False, verbose=False)
    batch = one_hot(data.atoms[:4], data.bonds[:4])
    assert batch.x.shape == (4, 9, 5) and batch.adj.shape == (4, 9, 9, 4)
    assert torch.equal(batch.adj, batch.adj.transpose(1, 2))
    assert (batch.adj.diagonal(dim1=1, dim2=2)[:, 0] == 1).all()


def test_split_is_80_10_10_and_deterministic_for_a_seed():
    a, b, c = split_indices(100, 0), split_indices(100, 0), split_indices(100, 1)
    assert [len(a[k]) for k in ("train", "val", "test")] == [80, 10, 10]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["test"], c["test"])
    assert len(torch.cat(list(a.values())).unique()) == 100


def test_cache_is_written_and_reused(tmp_path, tiny_path):
    path = tmp_path / "mols.smi"
    path.write_bytes(tiny_path.read_bytes())
    first = load_dataset(path, verbose=False)
    cached = list((tmp_path / "cache").glob("mols-*.pt"))
    assert len(cached) == 1
    second = load_dataset(path, verbose=False)
    assert second.smiles == first.smiles and torch.equal(second.bonds, first.bonds)


def test_corrupt_cache_is_rebuilt_not_fatal(tmp_path, tiny_path):
    path = tmp_path / "mols.smi"
    path.write_bytes(tiny_path.read_bytes())
    load_dataset(path, verbose=False)
    next((tmp_path / "cache").glob("*.pt")).write_bytes(b"garbage")
    assert len(load_dataset(path, verbose=False).smiles) == 30


def test_reads_gzip_csv_and_sdf(tmp_path):
    gz = tmp_path / "m.smi.gz"
    gz.write_bytes(gzip.compress(b"CCO\nCCN extra\n"))
    assert read_smiles(gz) == [(1, "CCO"), (2, "CCN")]
    csv = tmp_path / "m.csv"
    csv.write_text("id,SMILES\n1,CCO\n2,CC#N\n")
    assert read_smiles(csv) == [(2, "CCO"), (3, "CC#N")]
    from rdkit import Chem

    sdf = tmp_path / "m.sdf"
    with Chem.SDWriter(str(sdf)) as writer:
        for smi in ("CCO", "c1ccoc1"):
            writer.write(Chem.MolFromSmiles(smi))
    assert [s for _, s in read_smiles(sdf)] == ["CCO", "c1ccoc1"]


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "not found"),
        (b"", "no molecules"),
        (b"\x1f\x8b broken gzip", "corrupt gzip data"),
        (b"xx\nyy\n", "no usable molecule"),
        (b"CCO\n\x00\x01\x02\xff" * 20, "holds binary data"),
        (b"CCO\n\xff\xfe\xfa\n", "is not UTF-8 text"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.smi"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        load_dataset(path, use_cache=False, verbose=False)
    assert "\n" not in str(info.value)


def test_a_gz_name_on_plain_text_is_refused(tmp_path):
    path = tmp_path / "plain.smi.gz"
    path.write_text("CCO\n")
    with pytest.raises(ValueError, match="ends in .gz but is not gzip-compressed"):
        read_smiles(path)


def test_a_directory_is_reported_as_a_directory(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        load_dataset(tmp_path, use_cache=False, verbose=False)
    with pytest.raises(ValueError, match="is a directory"):
        read_smiles(tmp_path)


def test_a_csv_without_a_smiles_column_is_refused(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("name,value\nethanol,CCO\n")
    with pytest.raises(ValueError, match="no 'smiles' column \\(columns: name, value\\)"):
        read_smiles(path)


@pytest.mark.parametrize("suffix", [".csv", ".smi", ".smi.gz", ".sdf", ".sdf.gz", ".csv.gz"])
def test_sample_files_keep_invalid_entries_in_every_format(tmp_path, suffix):
    import gzip

    from molgan import chem

    samples = chem.Samples(["CCO", None, "C.CC", "c1ccoc1"])
    path = tmp_path / f"s{suffix}"
    if ".csv" in suffix:
        text = "smiles,valid\n" + "".join(f"{s or ''},x\n" for s in samples.lenient)
    elif ".sdf" in suffix:
        text = chem.sdf_block(samples)
    else:
        text = "".join(f"{s or ''}\n" for s in samples.lenient)
    data = text.encode()
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    assert read_samples(path) == ["CCO", None, "C.CC", "c1ccoc1"]


def test_load_notes_unreadable_sdf_records_in_words(tmp_path, capsys):
    from molgan import chem

    path = tmp_path / "m.sdf"
    path.write_text(chem.sdf_block(["CCO", None, "CCN"]))
    data = load_dataset(path, use_cache=False)
    assert sorted(data.smiles) == ["CCN", "CCO"]
    assert "m.sdf:2: skipped an SDF record RDKit cannot read" in capsys.readouterr().err
