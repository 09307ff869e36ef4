"""optinas reproduce: Li et al.'s Table 2 update rules (eqs. 7, 11-14), AdderNet's toys, the CIFAR-10
comparisons, the registry and the CLI."""

import dataclasses
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from optinas.search_space.errors import ConfigError
from optinas.strategies.cli import main as cli_main
from optinas.strategies.reproduce import EXPERIMENTS, list_text, parse_depths
from optinas.strategies.reproduce.optnet_table2.experiment import (
    STRUCTURES,
    OptNet,
    constant_floor,
    nesterov_betas,
    nesterov_h,
    nesterov_thetas,
    paper_claims,
    propagate,
)

GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # theta_1 with theta_0 = 1: theta^2 + theta - 1 = 0


def _optinas(*args, cwd):
    return subprocess.run([sys.executable, "-m", "optinas.strategies.cli", *args], cwd=cwd,
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
    assert lines[0].startswith("optnet-table2 ") and "Li et al. Table 2" in lines[0]
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


# ---------------------------------------------------------------- issue 8: all reproductions listed

def test_list_names_every_experiment_with_its_needs_and_time():
    lines = {line.split()[0]: line for line in list_text().splitlines()}
    assert list(lines) == ["optnet-table2", "adder-toys", "cifar10-compare"]
    assert "needs --data-dir" in lines["cifar10-compare"]
    assert all("no data needed" in lines[name] for name in ("optnet-table2", "adder-toys"))
    assert all(" ~" in line and ("min" in line or " h " in line) for line in lines.values())


# ---------------------------------------------------------------- AdderNet toys (section 5.3)

def test_toy_net_is_a_sigmoid_classifier_with_the_operator_swapped():
    from optinas.strategies.reproduce.adder_toys.experiment import ToyNet

    torch.manual_seed(0)
    x, y = torch.randn(16, 2, 1, 1), torch.randint(0, 2, (16,))
    for kind in ("fc", "adder"):
        logits = ToyNet(kind, 3)(x)
        assert logits.shape == (16, 2) and torch.equal(logits[:, 0], torch.zeros(16))
        # Softmax cross-entropy over (0, o) is the paper's binary cross-entropy of sigmoid(o).
        torch.testing.assert_close(torch.nn.functional.cross_entropy(logits, y),
                                   torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 1], y.float()))
    adder, fc = ToyNet("adder", 3), ToyNet("fc", 3)
    assert type(adder.hidden).__name__ == "AdderLinear" and isinstance(fc.hidden, torch.nn.Linear)
    with pytest.raises(ConfigError, match="toy network kind must be one of fc, adder, got 'conv'"):
        ToyNet("conv", 1)


def test_paper_reading_covers_every_figure_cell():
    from optinas.strategies.reproduce.adder_toys.experiment import NETWORKS, PAPER_READING, TOYS

    assert set(PAPER_READING) == {(toy, net, n) for toy, (_, _, ns) in TOYS.items() for net in NETWORKS for n in ns}
    # Section 5.3: the AdderNet separates the unit ball even with one hidden unit; FC needs three.
    assert PAPER_READING["unit-ball", "adder", 1] and not PAPER_READING["unit-ball", "fc", 2]


def test_comparative_claims_follow_the_cells():
    from optinas.strategies.reproduce.adder_toys.experiment import NETWORKS, TOYS, comparative_claims

    # The paper's picture: the AdderNet separates the unit ball from n = 1, wins on two balls,
    # and the x*y sign needs three units in both networks.
    accuracy = {("unit-ball", "adder", 1): 1.0, ("unit-ball", "fc", 1): 0.7, ("unit-ball", "fc", 2): 0.85,
                ("unit-ball", "fc", 3): 1.0, ("two-balls", "adder", 3): 0.95, ("two-balls", "fc", 3): 0.85,
                ("two-balls", "adder", 5): 0.97, ("two-balls", "fc", 5): 0.9}
    accuracy.update({("xy-sign", net, n): {1: 0.6, 2: 0.75, 3: 0.97}[n] for net in NETWORKS for n in (1, 2, 3)})
    rows = [{"toy": toy, "network": net, "hidden": n, "train_accuracy": accuracy.get((toy, net, n), 0.5)}
            for toy, (_, _, ns) in TOYS.items() for net in NETWORKS for n in ns]
    assert [claim["holds"] for claim in comparative_claims(rows)] == [True, True, True]
    for row in rows:
        if (row["toy"], row["network"], row["hidden"]) in {("unit-ball", "fc", 2), ("two-balls", "fc", 5),
                                                           ("xy-sign", "adder", 2)}:
            row["train_accuracy"] = 0.995  # FC n = 2 separates; FC wins at n = 5; adder n = 2 separates
    assert [claim["holds"] for claim in comparative_claims(rows)] == [False, False, False]
    two_balls = [row for row in rows if row["toy"] == "two-balls"]
    assert [claim["holds"] for claim in comparative_claims(two_balls)] == [None, False, None]


def test_adder_toys_fast_writes_its_table_and_the_adder_nets_learn(tmp_path, capsys):
    assert cli_main(["reproduce", "adder-toys", "--fast", "--device", "cpu", "--quiet",
                     "--runs-dir", str(tmp_path / "runs")]) == 0
    folder = tmp_path / "runs" / "reproduce" / "adder-toys"
    assert sorted(path.name for path in folder.iterdir()) == ["figure.html", "table.json", "table.md"]
    table = json.loads((folder / "table.json").read_text())
    assert len(table["results"]) == 18 and len(table["claims"]) == 18 and len(table["comparisons"]) == 3
    for toy in ("unit-ball", "two-balls", "xy-sign"):
        adder = [row for row in table["results"] if row["toy"] == toy and row["network"] == "adder"]
        best = max(row["test_accuracy"] for row in adder)
        assert best > adder[0]["chance"] + 0.1, (toy, best, adder[0]["chance"])
    markdown = (folder / "table.md").read_text()
    assert "## unit-ball (eq. 46, Fig. 4)" in markdown and "| AdderNet |" in markdown
    assert markdown in capsys.readouterr().out
    figure = (folder / "figure.html").read_text()
    assert "Plotly.newPlot" in figure and "<script src=" not in figure
    assert "two-balls, AdderNet, n = 10" in figure


# ---------------------------------------------------------------- CIFAR-10 comparisons

def test_cifar10_compare_without_data_refuses_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPTINAS_DATA", raising=False)
    assert cli_main(["reproduce", "cifar10-compare", "--fast", "--runs-dir", str(tmp_path / "runs")]) == 2
    stderr = capsys.readouterr().err
    assert len(stderr.strip().splitlines()) == 1 and "cifar10-compare needs CIFAR-10: pass --data-dir" in stderr
    assert not (tmp_path / "runs").exists()
    assert cli_main(["reproduce", "adder-toys", "--data-dir", str(tmp_path)]) == 2
    assert "experiment 'adder-toys' does not take --data-dir" in capsys.readouterr().err


def test_cifar10_is_found_in_each_layout_users_have(tmp_path, monkeypatch):
    from optinas.search_space.errors import DataError
    from optinas.strategies.reproduce.cifar10_compare.experiment import find_cifar10

    monkeypatch.delenv("OPTINAS_DATA", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="must hold cifar-10-batches-py/.*found none of them"):
        find_cifar10(str(empty))
    batches = tmp_path / "torchvision" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    (batches / "test_batch").write_bytes(b"")
    assert find_cifar10(str(batches.parent)) == ("cifar10", str(batches.parent))
    assert find_cifar10(str(batches)) == ("cifar10", str(batches.parent))
    (tmp_path / "folder" / "train").mkdir(parents=True)
    assert find_cifar10(str(tmp_path / "folder")) == (str(tmp_path / "folder"), None)
    archive = empty / "cifar10-jpeg.tar.gz"
    archive.write_bytes(b"")
    assert find_cifar10(str(empty)) == (str(archive), None) == find_cifar10(str(archive))
    monkeypatch.setenv("OPTINAS_DATA", str(empty))
    assert find_cifar10(None) == (str(archive), None)


def test_hb_net56_is_resnet56_built_like_hb_net20():
    from optinas.search_space.presets import preset
    from optinas.strategies.reproduce.cifar10_compare.experiment import genotype_for

    hb56, resnet56 = genotype_for("hb-net56"), preset("resnet56")
    assert [stage.depth for stage in hb56.stages] == [9, 9, 9] and hb56.stem == resnet56.stem
    assert all(dict((c.name, c.value) for c in stage.block.coefficients) == {"b1": 1.0, "b2": -1.0}
               for stage in hb56.stages)
    # The same edit applied to resnet20 gives the hb-net20 preset exactly.
    hb20 = dataclasses.replace(preset("resnet20"), stages=tuple(
        dataclasses.replace(stage, block=hb56.stages[0].block) for stage in preset("resnet20").stages))
    assert hb20 == preset("hb-net20")


_DATA = os.environ.get("OPTINAS_DATA")


@pytest.mark.skipif(not _DATA, reason="set OPTINAS_DATA to the shared data folder")
def test_cifar10_subset_trains_and_tabulates_beside_the_paper():
    from optinas.strategies.reproduce.cifar10_compare.experiment import CifarSettings, load_cifar10, run_models
    from optinas.strategies.reproduce.cifar10_compare.outputs import table_markdown

    settings = CifarSettings(models=("resnet20",), epochs=1, batch_size=32, warmup_epochs=0.0,
                             train_images=64, scored_images=32)
    task = load_cifar10(settings, None)
    assert (task.num_train, len(task.val_y), len(task.test_y)) == (64, 32, 32)
    assert len(task.train_y.unique()) >= 8  # a random sample, not the first class folder
    rows = run_models(task, settings)
    assert 0 <= rows[0]["test_accuracy"] <= 1 and len(rows[0]["curve"]) == 1
    markdown = table_markdown(settings, rows, task, 1.0)
    assert "| resnet20 | AdderNet Table 2, ResNet-20 CNN | 800 | 92.93 | 1 |" in markdown


@pytest.mark.slow
@pytest.mark.skipif(not _DATA, reason="set OPTINAS_DATA to the shared data folder")
def test_cifar10_compare_fast_writes_its_table(tmp_path, capsys):
    # 42 s to 2 min on the shared 2-core CPU (load-dependent), mostly the adder ResNet-20: slow.
    assert cli_main(["reproduce", "cifar10-compare", "--fast", "--device", "cpu", "--quiet",
                     "--runs-dir", str(tmp_path / "runs")]) == 0
    folder = tmp_path / "runs" / "reproduce" / "cifar10-compare"
    assert sorted(path.name for path in folder.iterdir()) == ["figure.html", "table.json", "table.md"]
    table = json.loads((folder / "table.json").read_text())
    assert [row["model"] for row in table["results"]] == ["resnet20", "resnet20-adder", "resnet20-binary",
                                                          "hb-net20"]
    assert all("test_accuracy" in row for row in table["results"])
    markdown = (folder / "table.md").read_text()
    assert "| resnet20-binary | AdderNet Table 2, ResNet-20 BNN | 800 | 84.87 | 1 |" in markdown
    assert "Plotly.newPlot" in (folder / "figure.html").read_text()
