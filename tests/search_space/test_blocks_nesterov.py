"""Nesterov's theta sequence (eq. 3), its momentum and the h recursion (eq. 5) of Li et al."""

import math

import pytest
import torch

from optinas.search_space.blocks.nesterov import coefficient_value, nesterov_betas, nesterov_h, nesterov_thetas

# By hand (and to 40 digits with the decimal module):
# theta_1 solves (1 - t) / t^2 = 1: t^2 + t - 1 = 0, t = (sqrt(5) - 1) / 2.
# theta_2 solves t^2 + s t - s = 0 with s = theta_1^2 = (3 - sqrt(5)) / 2.
THETA_1 = (math.sqrt(5.0) - 1.0) / 2.0
THETA_2 = 0.4558867801028665601863
THETA_3 = 0.3636639571190875951463
BETA_2 = THETA_2 * (1.0 - THETA_1) / THETA_1  # 0.28175352512532081819
BETA_3 = 0.4340427827803020006113
BETA_4 = 0.5310638054044795298462


def test_theta_sequence_matches_hand_computed_values():
    thetas = nesterov_thetas(4)
    assert thetas[0] == 1.0
    assert thetas[1] == pytest.approx(THETA_1, abs=1e-15)
    assert thetas[1] == pytest.approx(0.6180339887498948482, abs=1e-15)
    assert thetas[2] == pytest.approx(THETA_2, abs=1e-15)
    assert thetas[3] == pytest.approx(THETA_3, abs=1e-15)


def test_theta_recursion_holds_for_long_sequences():
    thetas = nesterov_thetas(200)
    for previous, current in zip(thetas, thetas[1:]):
        assert (1.0 - current) / current**2 == pytest.approx(1.0 / previous**2, rel=1e-12)
    # theta_k ~ 2 / (k + 2) for Nesterov's sequence.
    assert thetas[199] * 201 == pytest.approx(2.0, rel=0.02)


def test_betas_are_the_momentum_of_eq_3():
    betas = nesterov_betas(5)
    assert betas[0] == 0.0 and betas[1] == 0.0  # x_{-1} = x_0, and theta_0 = 1 makes beta_1 = 0
    assert betas[2] == pytest.approx(0.2817535251253208182, abs=1e-15)
    assert betas[2] == pytest.approx(BETA_2, abs=1e-15)
    assert betas[3] == pytest.approx(BETA_3, abs=1e-15)
    assert betas[4] == pytest.approx(BETA_4, abs=1e-15)
    assert all(0.0 <= beta < 1.0 for beta in nesterov_betas(100))


def test_h_rows_match_eq_5_by_hand():
    rows = nesterov_h(4)
    assert [len(row) for row in rows] == [1, 2, 3, 4]
    assert rows[0] == [1.0]                                    # h_{1,0} = 1 + beta_1 = 1
    assert rows[1] == pytest.approx([0.0, 1.0 + BETA_2])      # h_{2,0} = beta_2 (h_{1,0} - 1) = 0
    assert rows[2] == pytest.approx([0.0, BETA_3 * BETA_2, 1.0 + BETA_3], abs=1e-15)
    assert rows[2][1] == pytest.approx(0.122293084103554, abs=1e-14)
    assert rows[3] == pytest.approx([0.0, BETA_4 * BETA_3 * BETA_2, BETA_4 * BETA_3, 1.0 + BETA_4], abs=1e-15)


def test_constant_momentum_h_by_hand():
    # Footnote 4: beta fixed. h_{1,0} = 1 + b; h_{2,0} = b * b, h_{2,1} = 1 + b; h_{3,0} = b^3 ...
    b = 0.3
    rows = nesterov_h(3, momentum=b)
    assert [value for row in rows for value in row] == pytest.approx([1.3, 0.09, 1.3, 0.027, 0.09, 1.3])


@pytest.mark.parametrize("momentum", [None, 0.3])
def test_eq_4_with_these_h_reproduces_eq_3(momentum):
    # Nesterov on a quadratic f(z) = z^T A z / 2 with step 1 (Li et al.'s convention), started
    # with z_{-1} = z_0: the y_k of eq. 3 must equal the dense form y_{k+1} = y_k - sum_j h g_j.
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))
    a = q @ torch.diag(torch.linspace(0.05, 1.0, 6, dtype=torch.float64)) @ q.T
    grad = lambda z: a @ z  # noqa: E731
    steps = 12
    betas = nesterov_betas(steps + 1) if momentum is None else [momentum] * (steps + 1)
    z_prev = z = torch.randn(6, dtype=torch.float64)
    ys = []
    for k in range(steps):
        y = z + betas[k] * (z - z_prev) if k else z.clone()
        ys.append(y)
        z_prev, z = z, y - grad(y)
    rows = nesterov_h(steps, momentum)
    dense = [ys[0]]
    for k in range(steps - 1):
        dense.append(dense[k] - sum(rows[k][j] * grad(dense[j]) for j in range(k + 1)))
    for eq3, eq4 in zip(ys, dense):
        torch.testing.assert_close(eq4, eq3, rtol=0, atol=1e-12)


def test_coefficient_value_by_mode():
    assert coefficient_value({"name": "b", "value": 0.4, "mode": "fixed"}, 9.0) == (0.4, False)
    assert coefficient_value({"name": "b", "value": 0.0, "mode": "paper"}, 9.0) == (9.0, False)
    assert coefficient_value({"name": "b", "value": 0.4, "mode": "learnable"}, 9.0) == (0.4, True)
    assert coefficient_value({"name": "b", "value": 0.0, "mode": "learnable", "init": "paper"}, 9.0) == (9.0, True)
