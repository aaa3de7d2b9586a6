"""The repeat penalty (molgan.repeats): graph keys, the memory of G's recent graphs, and the
unlikelihood term that pushes G off the graphs it keeps making."""

import json

import torch

from molgan import repeats
from molgan.config import make_config
from molgan.train import train


def _graph(seed: int, n: int = 5):
    g = torch.Generator().manual_seed(seed)
    atoms = torch.randint(0, 4, (n,), generator=g)
    bonds = torch.randint(0, 3, (n, n), generator=g)
    return atoms, torch.triu(bonds, 1) + torch.triu(bonds, 1).T


def test_equal_graphs_share_a_key_and_one_changed_bond_changes_it():
    atoms, bonds = _graph(0)
    other = bonds.clone()
    other[0, 1] = other[1, 0] = (bonds[0, 1] + 1) % 3
    keys = repeats.graph_keys(
        torch.stack([atoms, atoms, atoms]), torch.stack([bonds, bonds, other])
    )
    assert keys.shape == (3,) and keys.dtype == torch.int64
    assert keys[0] == keys[1] and keys[0] != keys[2]
    assert (keys >= 0).all()


def test_memory_counts_copies_in_the_batch_and_in_the_window_and_forgets_old_graphs():
    memory = repeats.GraphMemory(members=2, window=3)
    counts = memory.update(torch.tensor([[7, 8, 7], [1, 2, 3]]))
    assert counts.tolist() == [[2.0, 1.0, 2.0], [1.0, 1.0, 1.0]]
    counts = memory.update(torch.tensor([[7], [9]]))  # member 0 remembers two 7s; 1 has no 9
    assert counts.tolist() == [[3.0], [1.0]]
    memory.update(torch.tensor([[5, 5], [5, 5]]))  # window 3: the oldest graphs are gone
    assert memory.update(torch.tensor([[8], [1]])).tolist() == [[1.0], [1.0]]


def test_memory_state_round_trips_and_refuses_another_size():
    memory = repeats.GraphMemory(members=1, window=4)
    memory.update(torch.tensor([[3, 4, 3]]))
    again = repeats.GraphMemory(members=1, window=4)
    again.load_state(memory.state())
    assert again.update(torch.tensor([[3]])).tolist() == [[3.0]]
    try:
        repeats.GraphMemory(members=2, window=4).load_state(memory.state())
    except ValueError as err:
        assert "graph memory" in str(err)
    else:
        raise AssertionError("a memory of another size was loaded")


def test_penalty_is_zero_for_new_graphs_and_lowers_the_probability_of_a_repeated_one():
    torch.manual_seed(0)
    x_logits = torch.randn(1, 2, 5, 4, requires_grad=True)  # (K, B, N, T)
    edge = torch.randn(1, 2, 5, 5, 3)
    adj_logits = (edge + edge.transpose(2, 3)).requires_grad_(True)
    atoms, bonds = x_logits.argmax(-1), adj_logits.argmax(-1)
    log_p = repeats.choice_log_prob(x_logits, adj_logits, atoms, bonds)  # (1, 2)
    assert (log_p < 0).all()
    fresh = repeats.repeat_penalty(log_p, torch.ones(1, 2), window=16)
    assert fresh.item() == 0.0
    penalty = repeats.repeat_penalty(log_p, torch.tensor([[9.0, 1.0]]), window=16)
    assert penalty.item() > 0
    penalty.sum().backward()
    assert x_logits.grad[0, 1].abs().sum() == 0  # the graph made once is left alone
    with torch.no_grad():  # a small step down the gradient: the repeated graph got less likely
        stepped = repeats.choice_log_prob(
            x_logits - 0.1 * x_logits.grad, adj_logits - 0.1 * adj_logits.grad, atoms, bonds
        )
    assert stepped[0, 0] < log_p[0, 0]


def test_training_with_the_repeat_penalty_logs_it_and_keeps_the_memory_in_the_checkpoint(
    tiny_path, tmp_path
):
    cfg = make_config(
        "debug",
        data=str(tiny_path),
        out_dir=str(tmp_path),
        max_steps=10,
        repeat_penalty=10.0,
        repeat_window=64,
        members=2,
        member_settings="repeat_penalty=10,0",
    )
    train(cfg)
    run_dir = tmp_path / cfg.run_name
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert any("loss/repeat" in r for r in rows)
    blob = torch.load(run_dir / "ckpt.pt", weights_only=True)
    assert blob["repeats"]["keys"].shape == (2, 64)
    assert (blob["repeats"]["keys"] >= 0).sum() > 0  # graphs were remembered
