"""optinas reproduce: seed 004's Table 2 update rules (eqs. 7, 11-14), the registry and the CLI."""

import json
import math
import subprocess
import sys

import pytest
import torch

from strategies.reproduce import EXPERIMENTS, list_text, parse_depths
from strategies.reproduce.optnet_table2 import (
    STRUCTURES, OptNet, constant_floor, nesterov_betas, nesterov_h, nesterov_thetas, paper_claims, propagate,
)
from search_space.errors import ConfigError
from strategies.cli import main as cli_main

GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # theta_1 with theta_0 = 1: theta^2 + theta - 1 = 0


def _optinas(*args, cwd):
    return subprocess.run([sys.executable, "-m", "strategies.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------- eq. 3 and eq. 5

def test_theta_sequence_by_hand():
    thetas = nesterov_thetas(4)
    assert thetas[0] == 1.0
    assert thetas[1] == pytest.approx(GOLDEN, abs=1e-12)
    # theta_2: positive root of t^2 + 0.381966 t - 0.381966 = 0, worked on paper.
    assert thetas[2] == pytest.approx(0.455887, abs=1e-6)
    for previous, theta in zip(nesterov_thetas(60), nesterov_thetas(60)[1:]):
        assert (1 - theta) / theta**2 == pytest.approx(1 / previous**2, rel=1e-12)


def test_betas_by_hand():
    betas = nesterov_betas(4)
    assert betas[:2] == [0.0, 0.0]  # x_{-1} = x_0, and theta_0 = 1 makes beta_1 = 0
    # beta_2 = theta_2 (1 - theta_1) / theta_1 = theta_2 * theta_1 (golden ratio identity)
    assert betas[2] == pytest.approx(0.455887 * GOLDEN, abs=1e-6)
    assert betas[2] == pytest.approx(0.281754, abs=1e-6)
    assert all(0 < beta < 1 for beta in nesterov_betas(40)[2:])


def test_h_coefficients_match_their_closed_form():
    betas = nesterov_betas(12)
    h = nesterov_h(11)
    assert h[0] == [1.0]  # h_{1,0} = 1: the first step is a plain gradient step
    assert h[1] == pytest.approx([0.0, 1 + betas[2]])
    assert h[2] == pytest.approx([0.0, betas[3] * betas[2], 1 + betas[3]])
    # Unrolling eq. 5: h_{k+1,k} = 1 + beta_{k+1}, h_{k+1,j} = beta_{j+1} ... beta_{k+1} (1 <= j < k),
    # h_{k+1,0} = 0 for k >= 1.
    for k, row in enumerate(h):
        assert len(row) == k + 1 and row[k] == pytest.approx(1 + betas[k + 1])
        for j in range(1, k):
            assert row[j] == pytest.approx(math.prod(betas[j + 1:k + 2]), rel=1e-12)
        if k:
            assert row[0] == 0.0


# ---------------------------------------------------------------- the five update rules

def _model_and_transforms(structure, depth, seed=0):
    torch.manual_seed(seed)
    model = OptNet(structure, depth, width=6).double()
    transforms = [lambda x, w=layer.weight: torch.sigmoid(x @ w.T) for layer in model.layers]
    return model, transforms, torch.randn(4, 6, dtype=torch.float64)


def test_optnet_has_one_bias_free_full_connection_per_layer():
    model = OptNet("admm", 7, width=100)
    assert sum(parameter.numel() for parameter in model.parameters()) == 7 * 100 * 100
    assert all(layer.bias is None for layer in model.layers)
    with pytest.raises(ConfigError, match="structure must be one of gd, hb, agd, agd2, admm, got 'resnet'"):
        OptNet("resnet", 3)


def test_depth_three_against_hand_written_expansions():
    b2, b3 = nesterov_betas(4)[2:]
    expected = {}
    for structure in STRUCTURES:
        model, (t0, t1, t2), x0 = _model_and_transforms(structure, 3)
        if structure == "gd":  # eq. 7
            want = t2(t1(t0(x0)))
        elif structure == "hb":  # eq. 11, beta = 0.3, x_{-1} = x_0
            x1 = t0(x0)
            x2 = t1(x1) + 0.3 * (x1 - x0)
            want = t2(x2) + 0.3 * (x2 - x1)
        elif structure == "agd":  # eq. 12: beta_0 = beta_1 = 0
            x1 = t0(x0)
            x2 = t1(x1)
            want = t2(x2 + b2 * (x2 - x1))
        elif structure == "agd2":  # eq. 13 with h_{1,0} = 1, h_2 = (0, 1+b2), h_3 = (0, b3 b2, 1+b3)
            x1 = t0(x0)
            x2 = x1 + (1 + b2) * (t1(x1) - x1)
            want = x2 + b3 * b2 * (t1(x1) - x1) + (1 + b3) * (t2(x2) - x2)
        else:  # eq. 14
            p1 = 0.5 * (t0(x0) + x0)
            x1 = 0.5 * (t0(x0) + p1)
            p2 = 0.5 * (t1(p1) + x1 - (p1 - x1))
            x2 = 0.5 * (t1(x1) + p2 + (p1 - x1))
            gap = (p1 - x1) + (p2 - x2)
            p3 = 0.5 * (t2(p2) + x2 - gap)
            want = 0.5 * (t2(x2) + p3 + gap)
        got = model(x0)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        expected[structure] = got
    # The five rules are five different networks on the same weights.
    outputs = list(expected.values())
    assert all(not torch.allclose(a, b) for i, a in enumerate(outputs) for b in outputs[i + 1:])


def test_agd2_is_agd_unrolled():
    # Eq. 4 re-expands eq. 3: AGD2's x_n is AGD's extrapolated point z_n + beta_n (z_n - z_{n-1}),
    # also with a different W_k per layer (each T_j(x_j) is computed once, at layer j).
    depth = 12
    _, transforms, x0 = _model_and_transforms("agd", depth, seed=3)
    z_last = propagate("agd", x0, transforms)
    z_before = propagate("agd", x0, transforms[:-1])
    beta_n = nesterov_betas(depth + 1)[depth]
    torch.testing.assert_close(propagate("agd2", x0, transforms),
                               z_last + beta_n * (z_last - z_before), rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- claims, registry, CLI

def test_paper_claims_are_checked_not_assumed():
    paper_like = {"admm": 1.07, "gd": 1.006, "hb": 1.004, "agd": 1.002, "agd2": 0.9996}
    rows = [{"structure": name, "depth": 40, "mse": mse} for name, mse in paper_like.items()]
    assert [claim["holds"] for claim in paper_claims(rows)] == [True, True, True]
    rows[1]["mse"] = 1.5  # GD now worst: ADMM no longer is, and the others still beat GD
    assert [claim["holds"] for claim in paper_claims(rows)] == [True, False, True]
    at_ten = [dict(row, depth=10) for row in rows]
    assert paper_claims(at_ten)[2]["holds"] is None


def test_constant_floor_is_the_mean_per_coordinate_variance():
    targets = torch.tensor([[0.0, 1.0], [2.0, 3.0], [1.0, 2.0]])
    assert constant_floor(targets) == pytest.approx(2 / 3)  # both columns: deviations -1, 1, 0


def test_parse_depths():
    assert parse_depths("40, 10,20,10") == (10, 20, 40)
    for bad in ("", "10,,20", "0", "ten", "-5", "1000"):
        with pytest.raises(ConfigError, match="--depths must be"):
            parse_depths(bad)


def test_list_prints_one_line_per_experiment(tmp_path):
    done = _optinas("reproduce", "--list", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == len(EXPERIMENTS) and lines == list_text().splitlines()
    assert lines[0].startswith("optnet-table2 ") and "seed 004 Table 2" in lines[0]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, fragment", [
    (["reproduce", "optnet-table3"], "unknown experiment 'optnet-table3'; known: optnet-table2"),
    (["reproduce"], "name an experiment"),
    (["reproduce", "optnet-table2", "--depths", "10,x"], "--depths must be comma-separated"),
    (["reproduce", "optnet-table2", "--epochs", "0"], "--epochs must be a positive integer, got 0"),
    (["reproduce", "optnet-table2", "--fast", "--device", "tpu"], "device must be"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, fragment):
    # In process (the subprocess path is covered by the runs below): main() is the console script.
    assert cli_main([*args, "--runs-dir", str(tmp_path / "runs")]) == 2
    stderr = capsys.readouterr().err
    assert fragment in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert not (tmp_path / "runs").exists()


def test_fast_run_writes_table_json_and_offline_figure(tmp_path):
    done = _optinas("reproduce", "optnet-table2", "--fast", "--device", "cpu", "--quiet",
                    "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "runs" / "reproduce" / "optnet-table2"
    assert sorted(path.name for path in folder.iterdir()) == ["figure.html", "table.json", "table.md"]
    table = json.loads((folder / "table.json").read_text())
    assert table["settings"]["depths"] == [10, 20] and table["settings"]["pairs"] == 1000
    assert sorted((row["structure"], row["depth"]) for row in table["results"]) == \
        sorted((name, depth) for name in STRUCTURES for depth in (10, 20))
    assert all(math.isfinite(row["mse"]) and 0 < row["mse"] < 3 for row in table["results"])
    markdown = (folder / "table.md").read_text()
    assert "| 20 |" in markdown and "(1.07495)" in markdown and "ADMM (14)" in markdown
    assert 0.8 < table["constant_floor"] < 1.2 and f"gives MSE {table['constant_floor']:.5f}" in markdown
    assert markdown in done.stdout
    figure = (folder / "figure.html").read_text()
    assert "Plotly.newPlot" in figure and "<script src=" not in figure  # plotly.js embedded
    assert "AGD2 (13) ours" in figure and "AGD2 (13) paper" in figure
