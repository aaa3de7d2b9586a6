import torch

from molgan import losses


def _batch(B=4, N=3, T=5, R=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.one_hot(torch.randint(0, T, (B, N), generator=g), T).float()
    adj = torch.nn.functional.one_hot(torch.randint(0, R, (B, N, N), generator=g), R).float()
    x_f = torch.softmax(torch.randn(B, N, T, generator=g), -1)
    adj_f = torch.softmax(torch.randn(B, N, N, R, generator=g), -1)
    return x, adj, x_f, adj_f


def test_gradient_penalty_is_zero_for_unit_norm_gradient_per_entry():
    x, adj, x_f, adj_f = _batch()
    T, R = x.shape[-1], adj.shape[-1]
    # D = Σ_i <x_i, u> + Σ_ij <adj_ij, v> with unit u, v: every per-entry gradient has norm 1.
    u = torch.ones(T) / T**0.5
    v = torch.ones(R) / R**0.5

    def critic(x, adj):
        return ((x @ u).sum(1) + (adj @ v).sum((1, 2)))[:, None]

    assert losses.gradient_penalty(critic, x, adj, x_f, adj_f).item() < 1e-10


def test_gradient_penalty_is_positive_otherwise_and_uses_the_critic_output():
    x, adj, x_f, adj_f = _batch()

    def critic(x, adj):
        return 3.0 * (x.sum((1, 2)) + adj.sum((1, 2, 3)))[:, None]

    T, R = x.shape[-1], adj.shape[-1]
    expected = (1 - 3.0 * R**0.5) ** 2 + (1 - 3.0 * T**0.5) ** 2
    assert abs(losses.gradient_penalty(critic, x, adj, x_f, adj_f).item() - expected) < 1e-4


def test_gradient_penalty_is_taken_at_interpolates_not_at_real_inputs():
    x, adj, x_f, adj_f = _batch()
    seen = []

    def critic(x, adj):
        seen.append(x.detach().clone())
        return (x**2).sum((1, 2))[:, None] + adj.sum((1, 2, 3))[:, None]

    losses.gradient_penalty(critic, x, adj, x_f, adj_f, torch.Generator().manual_seed(0))
    eps = torch.rand(x.shape[0], 1, 1, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(seen[0], eps * x + (1 - eps) * x_f)
    assert not torch.allclose(seen[0], x)


def test_gradient_penalty_backpropagates_to_critic_parameters():
    x, adj, x_f, adj_f = _batch()
    w = torch.tensor(2.0, requires_grad=True)

    def critic(x, adj):
        return w * (x**2).sum((1, 2))[:, None] + adj.sum((1, 2, 3))[:, None]

    gp = losses.gradient_penalty(critic, x, adj, x_f, adj_f)
    gp.backward()
    assert w.grad is not None and w.grad.abs() > 0


def test_wasserstein_signs():
    real, fake = torch.full((4, 1), 2.0), torch.full((4, 1), -1.0)
    assert losses.wasserstein_d(real, fake).item() == -3.0
    assert losses.wasserstein_g(fake).item() == 1.0


def test_generator_loss_lambda_one_is_the_wgan_term_and_lambda_zero_the_scaled_rl_term():
    d_fake, v_fake = torch.full((4, 1), -2.0), torch.full((4, 1), 0.5)
    one = losses.generator_loss(d_fake, v_fake, 1.0)
    assert one.loss.item() == 2.0 and one.rl.item() == 0.0
    zero = losses.generator_loss(d_fake, v_fake, 0.0)
    assert zero.alpha.item() == 4.0 and zero.loss.item() == -2.0  # α·L_RL = 4 · -0.5
    unscaled = losses.generator_loss(d_fake, v_fake, 0.0, scale_rl=False)
    assert unscaled.loss.item() == -0.5


def test_alpha_denominator_is_clamped_when_rewards_vanish():
    out = losses.generator_loss(torch.full((4, 1), -2.0), torch.zeros(4, 1), 0.5, alpha_eps=0.01)
    assert torch.isfinite(out.loss) and out.alpha.item() == 200.0


def test_alpha_is_detached_so_rl_gradient_flows_only_through_the_reward():
    d_fake = torch.full((4, 1), -2.0, requires_grad=True)
    v_fake = torch.full((4, 1), 0.5, requires_grad=True)
    losses.generator_loss(d_fake, v_fake, 0.0).loss.backward()
    assert d_fake.grad is None or d_fake.grad.abs().sum() == 0
    assert torch.allclose(v_fake.grad, torch.full((4, 1), -4.0 / 4))


def test_reward_net_loss_is_mean_squared_error_of_both_parts():
    v, r = torch.tensor([[0.5], [0.5]]), torch.tensor([[0.0], [1.0]])
    assert losses.reward_net_loss(v, r, v, v).item() == 0.25


def test_energy_distance_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    torch.manual_seed(0)
    a, b = torch.randn(2, 400, 8).unbind(0)
    same = losses.energy_distance(a, b)
    assert abs(float(same)) < 0.05
    shifted = [float(losses.energy_distance(a + d, b)) for d in (0.5, 1.0, 2.0)]
    assert 0.05 < shifted[0] < shifted[1] < shifted[2]


def test_energy_distance_penalises_a_collapsed_sample_more_than_one_with_the_data_spread():
    torch.manual_seed(1)
    real = torch.randn(256, 6)
    spread = torch.randn(256, 6)
    collapsed = real.mean(0, keepdim=True).expand(256, 6).clone()  # every sample at the mean
    assert losses.energy_distance(collapsed, real) > losses.energy_distance(spread, real) + 0.5


def test_energy_distance_gives_one_value_per_member_and_gradients_to_fake_only():
    fake = torch.randn(3, 10, 4, requires_grad=True)
    real = torch.randn(3, 10, 4, requires_grad=True)
    value = losses.energy_distance(fake, real)
    assert value.shape == (3,)
    value.sum().backward()
    assert fake.grad is not None and real.grad is None
    alone = losses.energy_distance(fake[1], real[1])
    torch.testing.assert_close(value[1], alone)
    x, adj = torch.rand(3, 10, 9, 5), torch.rand(3, 10, 9, 9, 4)
    assert losses.graph_features(x, adj).shape == (3, 10, 9 * 5 + 9 * 9 * 4)
