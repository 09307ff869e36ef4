"""Special cases of the blocks are the classic networks, exactly (Li et al., Table 3).

Each classic network is written here independently (plain torch, its own module layout);
weights are copied from the optinas model in registration order and the outputs compared.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from optinas.search_space import BlockSpec, Coefficient, Genotype, InputSpec, StageSpec, StemSpec, build_model, count_cost
from optinas.search_space.presets import preset


def _randomise_bn(model):
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)


def _copy_in_order(ours, theirs):
    """Load our tensors into ``theirs`` by registration order (names differ, shapes must not)."""
    mine, other = ours.state_dict(), theirs.state_dict()
    assert len(mine) == len(other)
    for (name, tensor), (other_name, target) in zip(mine.items(), other.items()):
        assert tensor.shape == target.shape, (name, other_name)
    theirs.load_state_dict(dict(zip(other, mine.values())))


def _params(model):
    return sum(parameter.numel() for parameter in model.parameters())


def _assert_same_outputs(ours, theirs, shape):
    _randomise_bn(ours)
    _copy_in_order(ours, theirs)
    ours.eval(), theirs.eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-5)


# -- He et al.'s CIFAR ResNet with option-A shortcuts -----------------------------------------


class CifarBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.extra = stride, cout - cin

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x[:, :, ::self.stride, ::self.stride]
        if self.extra:  # option A: the new channels are zeros
            zeros = shortcut.new_zeros(shortcut.shape[0], self.extra, *shortcut.shape[2:])
            shortcut = torch.cat([shortcut, zeros], dim=1)
        return F.relu(out + shortcut)


class CifarResNet(nn.Module):
    def __init__(self, depth, classes=10):
        super().__init__()
        n = (depth - 2) // 6
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for index in range(n):
                blocks.append(CifarBlock(cin, cout, stride if index == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.linear = nn.Linear(64, classes)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.linear(x.mean(dim=(2, 3)))


def test_resnet20_preset_is_he_et_al_resnet20():
    ours = build_model(preset("resnet20"))
    theirs = CifarResNet(20)
    assert _params(ours) == _params(theirs) == count_cost(preset("resnet20")).params == 269_722  # 0.27M
    _assert_same_outputs(ours, theirs, (3, 32, 32))


@pytest.mark.parametrize("name, expected", [("resnet32", 464_154), ("resnet56", 853_018)])
def test_resnet32_and_56_parameter_counts(name, expected):
    assert count_cost(preset(name)).params == expected == _params(CifarResNet(int(name[6:])))
    assert round(expected / 1e6, 2) == {"resnet32": 0.46, "resnet56": 0.85}[name]


def test_hb_net20_is_resnet20_with_b2_minus_one():
    resnet, hb_net = preset("resnet20"), preset("hb-net20")
    assert [stage.block.coefficient("b2").value for stage in hb_net.stages] == [-1.0] * 3
    assert count_cost(hb_net).params == count_cost(resnet).params
    model = build_model(hb_net).eval()
    _randomise_bn(model)
    blocks = model.stages[1].blocks
    x = torch.randn(2, 16, 8, 8)
    x0 = blocks[0].shortcut(x)
    x1 = F.relu(blocks[0].body(x))            # T(x_0) + (1 - 1) P(x_0)
    x2 = F.relu(blocks[1].body(x1) + x1 - x0)  # x_{k+1} = T(x_k) + x_k - x_{k-1} (section 6.1)
    x3 = F.relu(blocks[2].body(x2) + x2 - x1)
    with torch.no_grad():
        torch.testing.assert_close(model.stages[1](x), x3)


# -- torchvision-style ImageNet ResNets ----------------------------------------------------------


class ImageNetBlock(nn.Module):
    def __init__(self, cin, cout, stride, bottleneck):
        super().__init__()
        middle = cout // 4 if bottleneck else cout
        shapes = ([(cin, middle, 1, 1), (middle, middle, 3, stride), (middle, cout, 1, 1)] if bottleneck
                  else [(cin, cout, 3, stride), (cout, cout, 3, 1)])
        self.convs = nn.ModuleList()
        for a, b, k, s in shapes:
            self.convs.append(nn.Conv2d(a, b, k, s, k // 2, bias=False))
            self.convs.append(nn.BatchNorm2d(b))
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = x
        for index in range(0, len(self.convs), 2):
            out = self.convs[index + 1](self.convs[index](out))
            if index + 2 < len(self.convs):
                out = F.relu(out)
        return F.relu(out + (x if self.down is None else self.down(x)))


class ImageNetResNet(nn.Module):
    def __init__(self, depths, bottleneck, classes):
        super().__init__()
        self.conv = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = (256, 512, 1024, 2048) if bottleneck else (64, 128, 256, 512)
        blocks, cin = [], 64
        for stage, (depth, width) in enumerate(zip(depths, widths)):
            for index in range(depth):
                blocks.append(ImageNetBlock(cin, width, 2 if stage and index == 0 else 1, bottleneck))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.blocks(self.maxpool(F.relu(self.bn(self.conv(x)))))
        return self.fc(x.mean(dim=(2, 3)))


@pytest.mark.parametrize("name, depths, bottleneck, expected", [
    ("resnet18", (2, 2, 2, 2), False, 11_689_512),   # torchvision's resnet18
    ("resnet50", (3, 4, 6, 3), True, 25_557_032),    # torchvision's resnet50
])
def test_imagenet_resnets(name, depths, bottleneck, expected):
    genotype = preset(name)
    assert genotype.input.shape == (3, 224, 224)
    assert count_cost(genotype).params == expected
    # Same network at a small input (cheap on CPU): same parameters and outputs.
    small = preset(name, InputSpec(3, 32, 32, 10))
    ours, theirs = build_model(small), ImageNetResNet(depths, bottleneck, 10)
    assert _params(ours) == _params(theirs)
    _assert_same_outputs(ours, theirs, (3, 32, 32))


def test_vgg_small_is_the_plain_network_with_max_pools():
    theirs = nn.Sequential(
        nn.Conv2d(3, 128, 3, 1, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
        nn.Conv2d(128, 128, 3, 1, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(128, 256, 3, 1, 1, bias=False), nn.BatchNorm2d(256), nn.ReLU(),
        nn.Conv2d(256, 256, 3, 1, 1, bias=False), nn.BatchNorm2d(256), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(256, 512, 3, 1, 1, bias=False), nn.BatchNorm2d(512), nn.ReLU(),
        nn.Conv2d(512, 512, 3, 1, 1, bias=False), nn.BatchNorm2d(512), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 10))
    genotype = preset("vgg-small")
    # AdderNet counts all layers but the first and the last: 0.604G multiplications here.
    assert count_cost(genotype).paper["mul"] == 603_979_776
    _assert_same_outputs(build_model(preset("vgg-small", InputSpec(3, 16, 16, 10))), theirs, (3, 16, 16))


# -- DMRNet (merge-and-run) -----------------------------------------------------------------------


class Branch(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))


class MergeAndRunStage(nn.Module):
    """Zhao et al.'s merge-and-run: each branch adds the average of both branch inputs."""

    def __init__(self, cin, cout, stride, depth):
        super().__init__()
        self.pairs = nn.ModuleList(
            nn.ModuleList([Branch(cin if i == 0 else cout, cout, stride if i == 0 else 1),
                           Branch(cin if i == 0 else cout, cout, stride if i == 0 else 1)]) for i in range(depth))
        self.stride, self.extra = stride, cout - cin

    def forward(self, x):
        a = b = x
        for index, (branch_a, branch_b) in enumerate(self.pairs):
            if index == 0:  # both inputs are x; its average, through option A where the shape changes
                merged = x[:, :, ::self.stride, ::self.stride]
                merged = F.pad(merged, (0, 0, 0, 0, 0, self.extra))
            else:
                merged = (a + b) / 2
            a, b = F.relu(branch_a(a) + merged), F.relu(branch_b(b) + merged)
        return (a + b) / 2


class DMRNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.stages = nn.Sequential(MergeAndRunStage(16, 16, 1, 3), MergeAndRunStage(16, 32, 2, 3),
                                    MergeAndRunStage(32, 64, 2, 3))
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(self.stages(F.relu(self.bn(self.conv(x)))).mean(dim=(2, 3)))


def test_admm_with_one_half_is_dmrnet():
    genotype = preset("dmrnet20", InputSpec(3, 16, 16, 10))
    assert all(stage.block.pattern == "admm" and stage.block.coefficient("a").value == 0.5
               and stage.block.coefficient("c").value == 0.5 for stage in genotype.stages)
    ours, theirs = build_model(genotype), DMRNet()
    assert _params(ours) == _params(theirs) == 538_330
    _assert_same_outputs(ours, theirs, (3, 16, 16))


# -- pattern identities ----------------------------------------------------------------------------


def _one_stage(pattern, coefficients=(), depth=4, stem=8, width=16, stride=2):
    return Genotype(InputSpec(3, 8, 8, 10), StemSpec(stem),
                    (StageSpec(depth, width, stride=stride, block=BlockSpec(pattern, coefficients)),))


def test_agd_without_momentum_is_the_plain_network():
    plain = build_model(_one_stage("gd"))
    nesterov = build_model(_one_stage("agd", (Coefficient("b1", 1.0), Coefficient("b2", 0.0))))
    assert _params(plain) == _params(nesterov)
    _assert_same_outputs(nesterov, plain, (3, 8, 8))


def test_agd_dense_with_paper_alpha_and_beta_one_is_agd2():
    # Eq. 18 with alpha = h and beta_{k+1,j} = delta_jk - h_{k+1,j} is eq. 13.
    dense = build_model(_one_stage("agd_dense", (Coefficient("alpha", 0.0, "paper"), Coefficient("beta", 1.0)),
                                   depth=5, stride=1, stem=16))
    tied = build_model(_one_stage("agd2", (Coefficient("beta", 0.0, "paper"),), depth=5, stride=1, stem=16))
    assert _params(dense) == _params(tied)
    _assert_same_outputs(tied, dense, (3, 8, 8))
