"""The fast adder kernels fail safe: each failure falls back to the torch kernel, warning once.

Triton (CUDA) and the compiled CPU kernels compute AdderNet eqs. 5, 20 and 21 like
``adder_ops``; here each is broken on purpose (a compile error, a launch error, wrong
values, no C++ compiler, dynamo's recompile limit) and the layer must still return the
torch kernel's results, with exactly one warning per process (compiled) or per (device,
dtype) (Triton). There is no GPU here: the Triton entry points are replaced by torch
stand-ins and the dispatcher's device test is made to accept CPU tensors.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from optinas.search_space.errors import ConfigError
from optinas.search_space.layers import (
    adder_compiled, adder_dispatch, adder_ops, adder_triton, warm_up_adder,
)
from optinas.search_space.layers.adder import Adder2d

REPO_ROOT = Path(__file__).resolve().parents[2]
FALLBACK = "using the torch kernel there for the rest of this process"


def _inputs(dtype=torch.float64, n=2, c=3, o=4, h=6, w=5, k=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=gen, dtype=dtype)
    weight = torch.randn(o, c, k, k, generator=gen, dtype=dtype)
    return x, weight


def _run(fn, x, weight, stride=1, padding=1, p=1.0):
    """Output, input gradient and weight gradient of fn for a fixed upstream gradient."""
    x, weight = x.clone().requires_grad_(), weight.clone().requires_grad_()
    y = fn(x, weight, stride, padding, p)
    y.backward(torch.linspace(-1.0, 1.0, y.numel(), dtype=y.dtype).view_as(y))
    return y.detach(), x.grad, weight.grad


def _assert_equal_to_torch_kernel(x, weight, stride=1, padding=1, p=1.0, exact=True):
    """The dispatched layer's results are the torch kernel's: bit for bit once fallen back
    (``exact``), to rounding when a (stand-in) fast kernel computed them."""
    got = _run(adder_dispatch.adder_forward, x, weight, stride, padding, p)
    tolerance = dict(rtol=0, atol=0) if exact else dict(rtol=1e-6, atol=1e-5)
    for a, b in zip(got, _run(adder_ops.adder2d, x, weight, stride, padding, p)):
        torch.testing.assert_close(a, b, **tolerance)


def _fallback_warnings(record, kernel):
    return [w for w in record if issubclass(w.category, RuntimeWarning)
            and f"the {kernel} kernel failed" in str(w.message) and FALLBACK in str(w.message)]


# ---------------------------------------------------------------- Triton (CUDA)


class FakeTriton:
    """Torch stand-ins for the Triton entry points, each breakable: ``fail`` maps an entry
    point's name to "raise" (a launch error) or "wrong" (values off by 0.5)."""

    def __init__(self):
        self.fail: dict[str, str] = {}
        self.calls = {"forward": 0, "grad_input": 0}

    def _out(self, name, value):
        self.calls[name] += 1
        if self.fail.get(name) == "raise":
            raise RuntimeError("CUDA error: too many resources requested for launch")
        return value + 0.5 if self.fail.get(name) == "wrong" else value

    def forward(self, x, weight, stride, padding, p):
        return self._out("forward", adder_ops.adder2d_forward_cpu(x, weight, stride, padding, p))

    def grad_input(self, x, weight, grad, stride, padding):
        dx, _ = adder_ops.adder2d_backward_cpu(x, weight, grad, stride, padding)
        return self._out("grad_input", dx)


@pytest.fixture
def triton(monkeypatch):
    """CPU tensors take the Triton path, whose entry points are a ``FakeTriton``; no
    (device, dtype) has been checked yet."""
    fake = FakeTriton()
    monkeypatch.setitem(adder_compiled._STATE, "override", False)  # CPU fallback: adder_ops
    monkeypatch.setattr(adder_dispatch, "_TRITON_OK", {})
    monkeypatch.setattr(adder_dispatch, "_triton_device", lambda x: True)
    monkeypatch.setattr(adder_triton, "adder_forward_triton", fake.forward)
    monkeypatch.setattr(adder_triton, "adder_grad_input_triton", fake.grad_input)
    return fake


def test_triton_kernels_that_pass_the_check_serve_the_layer_without_warning(triton):
    x, weight = _inputs()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _assert_equal_to_torch_kernel(x, weight, exact=False)
        checked = dict(triton.calls)
        _assert_equal_to_torch_kernel(x, weight, stride=2, p=1.5, exact=False)
    assert not _fallback_warnings(record, "Triton")
    assert adder_dispatch._TRITON_OK == {(x.device, torch.float64): True}
    # The check ran every case once; each later call went to the (fake) Triton kernels.
    assert checked == {"forward": 4 + 1, "grad_input": 4 + 1}
    assert triton.calls == {"forward": 4 + 2, "grad_input": 4 + 2}


def test_triton_compile_error_falls_back_with_one_warning_per_device_and_dtype(monkeypatch):
    class CompilationError(Exception):
        pass

    def no_compile():
        raise CompilationError("at 12:8: unsupported tensor index")

    monkeypatch.setitem(adder_compiled._STATE, "override", False)
    monkeypatch.setattr(adder_dispatch, "_TRITON_OK", {})
    monkeypatch.setattr(adder_dispatch, "_triton_device", lambda x: True)
    monkeypatch.setattr(adder_triton, "_kernels", no_compile)  # the real entry points
    x, weight = _inputs()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _ in range(2):
            _assert_equal_to_torch_kernel(x, weight)
            _assert_equal_to_torch_kernel(x.float(), weight.float(), stride=2, p=1.25)
    found = _fallback_warnings(record, "Triton")
    assert len(found) == 2  # one for float64, one for float32, each once
    assert all("CompilationError: at 12:8" in str(w.message) for w in found)
    assert "for torch.float64" in str(found[0].message)
    assert "for torch.float32" in str(found[1].message)
    assert set(adder_dispatch._TRITON_OK.values()) == {False}


def test_triton_launch_error_on_first_use_falls_back_with_one_warning(triton):
    triton.fail["forward"] = "raise"
    x, weight = _inputs()
    with pytest.warns(RuntimeWarning, match="too many resources requested") as record:
        _assert_equal_to_torch_kernel(x, weight)
        _assert_equal_to_torch_kernel(x, weight, stride=2, p=1.5)
    assert len(_fallback_warnings(record, "Triton")) == 1
    assert triton.calls["forward"] == 1  # the check's first launch, never again


@pytest.mark.parametrize("entry", ["forward", "grad_input"])
def test_triton_launch_error_after_the_check_recomputes_with_torch(triton, entry):
    """A later call can compile a new specialisation (another shape or p) and fail: that
    call is recomputed by the torch kernel, and so is every later one."""
    x, weight = _inputs()
    adder_dispatch.adder_forward(x, weight, 1, 1, 1.0)  # passes the check
    triton.fail[entry] = "raise"
    with pytest.warns(RuntimeWarning, match="too many resources requested") as record:
        for _ in range(2):
            _assert_equal_to_torch_kernel(x, weight, stride=2, padding=0, p=1.75)
    assert len(_fallback_warnings(record, "Triton")) == 1
    assert adder_dispatch._TRITON_OK == {(x.device, torch.float64): False}


@pytest.mark.parametrize(("entry", "what"),
                         [("forward", "output"), ("grad_input", "input gradient")])
def test_triton_wrong_values_fail_the_check_with_one_warning(triton, entry, what):
    triton.fail[entry] = "wrong"
    x, weight = _inputs(dtype=torch.float32)
    with pytest.warns(RuntimeWarning, match=f"its {what} differs from the torch kernel") as record:
        for _ in range(2):
            _assert_equal_to_torch_kernel(x, weight)
        y = Adder2d(3, 4, 3)(x)  # the layer goes through the same dispatch
    assert len(_fallback_warnings(record, "Triton")) == 1
    assert y.shape == (2, 4, 6, 5)


def test_triton_self_check_catches_a_wrong_weight_gradient(triton, monkeypatch):
    monkeypatch.setattr(adder_triton, "adder_grad_weight", lambda *args: torch.zeros_like(args[1]))
    x, weight = _inputs()
    with pytest.warns(RuntimeWarning, match="its weight gradient differs") as record:
        _assert_equal_to_torch_kernel(x, weight)
    assert len(_fallback_warnings(record, "Triton")) == 1


def test_triton_out_of_memory_is_raised_not_hidden(triton, monkeypatch):
    def out_of_memory(*args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    x, weight = _inputs()
    adder_dispatch.adder_forward(x, weight, 1, 1, 1.0)
    monkeypatch.setattr(adder_triton, "adder_forward_triton", out_of_memory)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        adder_dispatch.adder_forward(x, weight, 1, 1, 1.0)
    assert adder_dispatch._TRITON_OK[(x.device, torch.float64)] is True


# ---------------------------------------------------------------- the compiled CPU kernels


@pytest.fixture
def compiled(monkeypatch):
    """The compiled CPU path on (as by default), not failed, no dtype checked yet."""
    monkeypatch.setitem(adder_compiled._STATE, "override", True)
    monkeypatch.setitem(adder_compiled._STATE, "failed", False)
    monkeypatch.setitem(adder_compiled._STATE, "checked", set())
    monkeypatch.setitem(adder_compiled._STATE, "kernels", None)
    return adder_compiled._STATE


def _uncompiled_kernels(offset=0.0, index=None, error=None):
    """The kernels' own Python functions, not compiled (correct, and cheap on tiny inputs);
    kernel ``index`` is shifted by ``offset`` or raises ``error``."""
    fns = [adder_compiled._neg_l1_windows, adder_compiled._neg_lp_windows,
           adder_compiled._hardtanh_grad_windows, adder_compiled._hardtanh_grad_cols]
    if index is not None:
        broken = fns[index]

        def kernel(*args):
            if error is not None:
                raise error
            return broken(*args) + offset

        fns[index] = kernel
    return lambda: tuple(fns)


def test_compiled_kernels_are_the_default_and_the_env_switch_turns_them_off(monkeypatch):
    monkeypatch.setitem(adder_compiled._STATE, "override", None)
    monkeypatch.setitem(adder_compiled._STATE, "failed", False)
    monkeypatch.delenv(adder_compiled.ENV_VAR, raising=False)
    assert adder_compiled.compiled_cpu_enabled()
    monkeypatch.setenv(adder_compiled.ENV_VAR, "0")
    assert not adder_compiled.compiled_cpu_enabled()
    monkeypatch.setenv(adder_compiled.ENV_VAR, "1")
    assert adder_compiled.compiled_cpu_enabled()
    monkeypatch.setenv(adder_compiled.ENV_VAR, "yes")
    with pytest.raises(ConfigError, match=r"OPTINAS_ADDER_COMPILE must be 0 .* or 1 .*got 'yes'"):
        adder_compiled.compiled_cpu_enabled()
    monkeypatch.setitem(adder_compiled._STATE, "override", False)
    assert not adder_compiled.compiled_cpu_enabled()


def test_warm_up_returns_at_once_when_the_compiled_kernels_are_off(compiled, monkeypatch):
    def must_not_compile():
        raise AssertionError("compiled although switched off")

    monkeypatch.setattr(adder_compiled, "_kernels", must_not_compile)
    compiled["override"] = None
    monkeypatch.setenv(adder_compiled.ENV_VAR, "0")
    assert warm_up_adder("cpu") is False
    assert warm_up_adder("meta") is False  # no fast kernel there
    assert not compiled["checked"] and not compiled["failed"]


def test_warm_up_checks_once_per_process_and_dtype(compiled, monkeypatch):
    calls = []
    kernels = _uncompiled_kernels()

    def counting():
        calls.append(1)
        return kernels()

    monkeypatch.setattr(adder_compiled, "_kernels", counting)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert warm_up_adder("cpu") is True
        first = len(calls)
        assert warm_up_adder("cpu") is True and warm_up_adder(torch.device("cpu")) is True
    assert not _fallback_warnings(record, "compiled CPU")
    # Four cases (p = 1 and 1.5 at strides 1 and 2), one forward and one backward kernel each.
    assert first == 8 and len(calls) == first
    assert compiled["checked"] == {(torch.float32, 3, 3)}
    assert warm_up_adder("cpu", kernel_sizes=(1, 3, 5)) is True  # 1x1 is never compiled
    assert len(calls) == 2 * first and compiled["checked"] == {(torch.float32, 3, 3),
                                                               (torch.float32, 5, 5)}


def test_compile_error_falls_back_to_eager_with_one_warning(compiled, monkeypatch):
    def broken():
        raise RuntimeError("InductorError: CppCompileError: C++ compile error")

    monkeypatch.setattr(adder_compiled, "_kernels", broken)
    x, weight = _inputs()
    with pytest.warns(RuntimeWarning, match="CppCompileError") as record:
        for _ in range(2):
            _assert_equal_to_torch_kernel(x, weight)
            _assert_equal_to_torch_kernel(x.float(), weight.float(), stride=2, p=1.5)
        assert warm_up_adder("cpu") is False
    assert len(_fallback_warnings(record, "compiled CPU")) == 1
    assert compiled["failed"] and not adder_compiled.compiled_cpu_enabled()


@pytest.mark.parametrize(("index", "what"), [(0, "output"), (2, "input gradient")])
def test_wrong_compiled_values_fail_the_check_with_one_warning(compiled, monkeypatch, index, what):
    monkeypatch.setattr(adder_compiled, "_kernels", _uncompiled_kernels(offset=0.25, index=index))
    x, weight = _inputs(dtype=torch.float32)
    with pytest.warns(RuntimeWarning, match=f"its {what} differs from the torch kernel") as record:
        for _ in range(2):
            _assert_equal_to_torch_kernel(x, weight)
    assert len(_fallback_warnings(record, "compiled CPU")) == 1
    assert compiled["failed"]


def test_recompile_limit_takes_the_eager_kernel_for_that_call_only(compiled, monkeypatch):
    """Past dynamo's limit a kernel raises instead of running uncompiled; that call is
    computed eagerly, without a warning, and the compiled path stays on."""
    limit = torch._dynamo.exc.FailOnRecompileLimitHit("recompile_limit reached")
    monkeypatch.setattr(adder_compiled, "_kernels", _uncompiled_kernels())
    assert warm_up_adder("cpu") is True
    x, weight = _inputs(dtype=torch.float32)
    for index, stride in ((0, 1), (2, 1), (3, 2)):
        kernels = _uncompiled_kernels(index=index, error=limit)
        monkeypatch.setattr(adder_compiled, "_kernels", kernels)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            got = _run(adder_dispatch.adder_forward, x, weight, stride)
        assert not _fallback_warnings(record, "compiled CPU")
        for a, b in zip(got, _run(adder_ops.adder2d, x, weight, stride)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
    assert not compiled["failed"] and adder_compiled.compiled_cpu_enabled()


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_first_use_in_a_validation_pass_checks_with_gradients_anyway(triton, compiled, monkeypatch,
                                                                      mode):
    """The check runs a backward pass: a first use under no_grad or inference_mode (a
    validation pass) must not fail it for want of gradients."""
    monkeypatch.setattr(adder_compiled, "_kernels", _uncompiled_kernels())
    compiled["override"] = True
    x, weight = _inputs(dtype=torch.float32)
    with warnings.catch_warnings(record=True) as record, mode():
        warnings.simplefilter("always")
        y = adder_dispatch.adder_forward(x, weight, 1, 1, 1.0)  # Triton (stand-in)
        monkeypatch.setattr(adder_dispatch, "_triton_device", lambda x: False)
        y_cpu = adder_dispatch.adder_forward(x, weight, 1, 1, 1.0)  # compiled CPU
    assert not _fallback_warnings(record, "Triton")
    assert not _fallback_warnings(record, "compiled CPU")
    assert adder_dispatch._TRITON_OK == {(x.device, torch.float32): True}
    assert compiled["checked"] == {(torch.float32, 3, 3)} and not compiled["failed"]
    torch.testing.assert_close(y, adder_ops.adder2d(x, weight, 1, 1, 1.0))
    torch.testing.assert_close(y_cpu, y, rtol=1e-6, atol=1e-5)


_NO_COMPILER_SCRIPT = """
import warnings
import torch
import torch._inductor.config
from optinas.search_space.layers import adder_ops, warm_up_adder
from optinas.search_space.layers.adder import Adder2d

torch._inductor.config.cpp.cxx = ("/nonexistent/c++",)
with warnings.catch_warnings(record=True) as record:
    warnings.simplefilter("always")
    assert warm_up_adder("cpu") is False
    layer = Adder2d(4, 6, 3)
    x = torch.randn(3, 4, 9, 8)
    torch.testing.assert_close(layer(x), adder_ops.adder2d(x, layer.weight, 1, 1, 1.0))
failed = [str(w.message) for w in record if "compiled CPU kernel failed" in str(w.message)]
assert len(failed) == 1, failed
print("fell back:", failed[0])
"""


def test_no_cpp_compiler_falls_back_with_one_warning(tmp_path):
    """Real torch.compile with a C++ compiler that does not exist, in a fresh process and
    compile cache (a cached kernel would need no compiler)."""
    env = dict(os.environ, OPTINAS_ADDER_COMPILE="1", TORCHINDUCTOR_CACHE_DIR=str(tmp_path),
               OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", _NO_COMPILER_SCRIPT], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fell back: adder: the compiled CPU kernel failed on the CPU" in result.stdout


# ---------------------------------------------------------------- the real compiled kernels


def _reference(x, weight, stride, padding, p):
    """Eq. 20 literally: the full broadcast of |X - F|^p over unfolded receptive fields."""
    n, _, h, w = x.shape
    o, _, kh, kw = weight.shape
    cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)
    dist = (cols[:, None] - weight.reshape(o, -1)[None, :, :, None]).abs() ** p
    ho, wo = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    return -dist.sum(2).view(n, o, ho, wo)


def test_compiled_kernels_match_the_slow_reference_on_a_tiny_shape(compiled):
    """The real torch.compile kernels (p = 1, stride 1: one forward and one backward graph)
    against eq. 20 and its gradients, eqs. 5 and 21, in float64."""
    pytest.importorskip("torch._inductor")
    compiled["checked"].add((torch.float64, 3, 3))  # compile only what this test runs
    x, weight = _inputs(n=3, c=4, o=5, h=7, w=6)
    x, weight = x.requires_grad_(), weight.requires_grad_()
    y = adder_compiled.adder2d_compiled(x, weight, 1, 1, 1.0)
    grad = torch.linspace(-1.0, 1.0, y.numel(), dtype=y.dtype).view_as(y)
    dx, dw = torch.autograd.grad(y, (x, weight), grad)
    assert not compiled["failed"], "the compiled kernels fell back to eager"
    torch.testing.assert_close(y, _reference(x, weight, 1, 1, 1.0), rtol=1e-10, atol=1e-10)
    # eq. 5: dF = sum G (X - F); eq. 21: dX = sum_o G HardTanh(F - X), folded back.
    cols = F.unfold(x.detach(), 3, padding=1)
    diff = cols[:, None] - weight.detach().reshape(5, -1)[None, :, :, None]
    g = grad.flatten(2)[:, :, None, :]
    torch.testing.assert_close(dw, (g * diff).sum((0, 3)).view_as(weight), rtol=1e-10, atol=1e-10)
    dx_ref = F.fold((g * (-diff).clamp(-1.0, 1.0)).sum(1), (7, 6), 3, padding=1)
    torch.testing.assert_close(dx, dx_ref, rtol=1e-10, atol=1e-10)
