"""Special cases of the blocks are the classic networks (Li et al., Table 3)."""

import torch
import torch.nn.functional as F
from torch import nn

from optinas.search_space import BlockSpec, Coefficient, Genotype, InputSpec, StageSpec, StemSpec, build_model


class BasicBlock(nn.Module):
    """An independent ResNet basic block (He et al. 2016), projection shortcut."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.down is None else self.down(x)))


def _stage_model(pattern, coefficients=()):
    genotype = Genotype(InputSpec(3, 8, 8, 10), StemSpec(8),
                        (StageSpec(3, 16, stride=2, block=BlockSpec(pattern, coefficients)),))
    return build_model(genotype)


def _copy_block(ours, theirs):
    theirs.conv1.weight.data.copy_(ours.body.layer1.weight)
    theirs.conv2.weight.data.copy_(ours.body.layer2.weight)
    for mine, other in ((ours.body.bn1, theirs.bn1), (ours.body.bn2, theirs.bn2)):
        other.load_state_dict(mine.state_dict())
    if theirs.down is not None:
        theirs.down[0].weight.data.copy_(ours.shortcut.layer.weight)
        theirs.down[1].load_state_dict(ours.shortcut.bn.state_dict())


def _randomise_bn(model):
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)


def test_heavy_ball_with_b1_1_b2_0_is_the_resnet_basic_block():
    model = _stage_model("hb", (Coefficient("b1", 1.0), Coefficient("b2", 0.0))).eval()
    _randomise_bn(model)
    ours = model.stages[0].blocks
    theirs = nn.Sequential(BasicBlock(8, 16, 2), BasicBlock(16, 16, 1), BasicBlock(16, 16, 1)).eval()
    for mine, other in zip(ours, theirs):
        _copy_block(mine, other)
    x = torch.randn(2, 8, 8, 8)
    history = [x]
    for block in ours:
        history = block(history)
    torch.testing.assert_close(history[-1], theirs(x), rtol=0, atol=1e-6)


def test_gd_is_the_plain_network():
    model = _stage_model("gd").eval()
    _randomise_bn(model)
    x = torch.randn(2, 8, 8, 8)
    expected = x
    for block in model.stages[0].blocks:
        body = block.body
        expected = F.relu(body.bn2(body.layer2(F.relu(body.bn1(body.layer1(expected))))))
    torch.testing.assert_close(model.stages[0](x), expected)


def test_hb_net_subtracts_the_previous_state():
    # b1 = 1, b2 = -1: x_{k+1} = ReLU(T(x_k) + x_k - x_{k-1}); the first block restarts with x_{-1} = x_0.
    model = _stage_model("hb", (Coefficient("b1", 1.0), Coefficient("b2", -1.0))).eval()
    _randomise_bn(model)
    blocks = model.stages[0].blocks
    x = torch.randn(2, 8, 8, 8)
    x0 = blocks[0].shortcut(x)
    x1 = F.relu(blocks[0].body(x))            # T(x) + (1 - 1) P(x)
    x2 = F.relu(blocks[1].body(x1) + x1 - x0)
    x3 = F.relu(blocks[2].body(x2) + x2 - x1)
    torch.testing.assert_close(model.stages[0](x), x3)


def test_learnable_coefficients_are_parameters_that_train():
    model = _stage_model("hb", (Coefficient("b1", 1.0, "learnable"), Coefficient("b2", -0.5, "learnable")))
    learned = [name for name, _ in model.named_parameters() if name.endswith("combine.learned")]
    assert len(learned) == 3
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    assert model.stages[0].blocks[1].combine.learned.grad is not None
    assert model.stages[0].blocks[1].combine.learned.tolist() == [1.0, -0.5]
