"""Learning checks on digits (CPU): every cheap-arithmetic kind trains, and AdderNet's recipe
(full-precision gradients, l_p schedule, adaptive learning rate; AdderNet) beats plain
autograd sign gradients on the same network.

One network shape for all kinds: float 3x3 stem (16 channels, 8x8), one ResNet stage
(heavy ball b1 = 1, b2 = 0) of depth 1, width 16, stride 2 with the pad shortcut, whose two
body layers are of the kind under test, and a float classifier (first and last layers
float, as in AdderNet and XNOR-Net++). Six epochs of the evaluator's default SGD recipe.

Validation accuracy (288 images, chance 0.10) measured on the 2-core sandbox, torch 2.13
CPU, one thread, seeds 0 / 1 / 2: conv 0.962 / 0.955 / 0.969; adder 0.889 / 0.861 / 0.837;
adder with sign gradients 0.382 / 0.306 / 0.288; binary (rank-1 scale) 0.906 / 0.865 /
0.896 (without its gradient rescaling, eta = 0: 0.524 / 0.500 / 0.576); 4-bit LSQ weights
and activations 0.965 / 0.948 / 0.958; 4-bit codebook weights 0.958 / 0.951 (seeds 0, 1).
The tests run seed 0; the thresholds leave room for other BLAS builds and thread counts.
"""

import pytest
import torch
import torch.nn.functional as F

from optinas.evaluator import evaluate, load_task
from optinas.evaluator.fidelity import Fidelity
from optinas.search_space import BlockSpec, Genotype, InputSpec, LayerSpec, StageSpec, StemSpec, build_model
from optinas.search_space.layers.adder_kind import AdderConv2d
from optinas.search_space.layers.adder_ops import adder2d
from optinas.search_space.recipes import recipes_for

FIDELITY = Fidelity(epochs=6, batch_size=64, lr=0.05)
_ACCURACY: dict = {}  # the adder run serves two tests


@pytest.fixture(scope="module")
def digits():
    return load_task("digits")


def _genotype(layer: LayerSpec) -> Genotype:
    stage = StageSpec(depth=1, width=16, stride=2, block=BlockSpec("hb"), layer=layer, shortcut="pad")
    return Genotype(InputSpec(1, 8, 8, 10), StemSpec(16), (stage,))


def _train(digits, layer: LayerSpec, seed: int = 0, sign_gradients: bool = False) -> float:
    key = (layer, seed, sign_gradients)
    if key not in _ACCURACY:
        _ACCURACY[key] = _train_once(digits, layer, seed, sign_gradients)
    return _ACCURACY[key]


def _train_once(digits, layer, seed, sign_gradients):
    torch.manual_seed(seed)
    model = build_model(_genotype(layer))
    if sign_gradients:
        for module in model.modules():
            if type(module) is AdderConv2d:
                module.__class__ = SignGradientAdder2d
        assert recipes_for(model) == []  # no l_p schedule, no adaptive learning rate
    return evaluate(model, digits, FIDELITY, seed=seed).val_accuracy


class SignGradientAdder2d(AdderConv2d):
    """The baseline: Y = -sum |X - F| (p = 1 throughout) differentiated by autograd, so the
    filters get sign(X - F) (eq. 4) and the inputs sign(F - X) - the signSGD update that
    AdderNet (section 3.2) replaces by eqs. 5 and 21.

    Batches go through in chunks of 16 images only to keep each broadcast tensor small
    (the arithmetic and the gradients are the same); evaluation, which needs no
    gradient, uses the fused operator at p = 1, which gives the same outputs.
    """

    def forward(self, x):
        if not torch.is_grad_enabled():
            return adder2d(x, self.weight, self.stride, self.padding, 1.0)
        height = (x.shape[2] + 2 * self.padding - self.kernel_size) // self.stride + 1
        columns = F.unfold(x, self.kernel_size, padding=self.padding, stride=self.stride)
        filters = self.weight.view(self.out_channels, -1, 1)
        y = torch.cat([-(chunk.unsqueeze(1) - filters).abs().sum(2) for chunk in columns.split(16)])
        return y.view(x.shape[0], self.out_channels, height, -1)


def test_sign_gradient_baseline_computes_the_adder_forward():
    torch.manual_seed(0)
    layer = SignGradientAdder2d(3, 4, 3, 2)
    x = torch.randn(5, 3, 7, 6)
    torch.testing.assert_close(layer(x), adder2d(x, layer.weight, 2, 1, 1.0), rtol=1e-5, atol=1e-4)
    layer(x).sum().backward()
    assert set(layer.weight.grad.flatten().tolist()) <= set(range(-200, 201))  # sums of signs


@pytest.mark.parametrize("layer, threshold", [
    (LayerSpec("adder"), 0.7),
    (LayerSpec("binary"), 0.7),
    (LayerSpec("quant", {"w_bits": 4, "a_bits": 4}), 0.9),
    (LayerSpec("quant", {"w_bits": 4, "scheme": "codebook"}), 0.85),
], ids=["adder", "binary", "quant-w4a4", "codebook-w4"])
def test_cheap_arithmetic_networks_learn_digits(digits, layer, threshold):
    assert _train(digits, layer) >= threshold


def test_adder_recipe_beats_sign_gradients(digits):
    paper = _train(digits, LayerSpec("adder"))
    sign = _train(digits, LayerSpec("adder"), sign_gradients=True)
    assert paper >= sign + 0.3, (paper, sign)
