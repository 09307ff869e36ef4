"""`optinas export --format py|onnx|pt2` from the command line: all three give the same model."""

import importlib.util
import json

import numpy as np
import onnxruntime
import pytest
import torch

from optinas.search_space import InputSpec, build_model
from optinas.search_space.presets import preset
from optinas.strategies.cli import main

TOLERANCE = 1e-4


def _run_py_export(path, images):
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.build_model().eval()
    with torch.no_grad():
        return model(images)


def _relative_error(a, b):
    return float((torch.as_tensor(a) - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("name", ["resnet20", "resnet20-adder", "resnet20-binary", "resnet20-quant4"])
def test_onnx_and_pt2_equal_model_py_with_the_same_weights(tmp_path, capsys, name):
    # The paper presets at 3x8x8 with 4 classes, so the test stays fast; trained-like weights:
    # BatchNorm statistics and quant steps from one training-mode batch.
    genotype = preset(name, InputSpec(3, 8, 8, 4))
    (tmp_path / "g.json").write_text(genotype.to_json())
    torch.manual_seed(0)
    model = build_model(genotype)
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 3, 8, 8))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    for fmt in ("py", "onnx", "pt2"):
        code = main(["export", str(tmp_path / "g.json"), "--weights", str(tmp_path / "w.pt"), "--format", fmt,
                     "-o", str(tmp_path / f"m.{fmt}")])
        assert code == 0, capsys.readouterr().err
    for batch in (1, 7):
        images = torch.randn(batch, 3, 8, 8, generator=torch.Generator().manual_seed(batch))
        reference = _run_py_export(tmp_path / "m.py", images)
        session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
        (onnx_out,) = session.run(None, {session.get_inputs()[0].name: images.numpy()})
        program = torch.export.load(str(tmp_path / "m.pt2")).module()
        with torch.no_grad():
            pt2_out = program(images)
        assert onnx_out.shape == (batch, 4) and tuple(pt2_out.shape) == (batch, 4)
        assert _relative_error(np.asarray(onnx_out), reference) <= TOLERANCE
        assert _relative_error(pt2_out, reference) <= TOLERANCE


def test_a_format_gets_its_own_file_ending(tmp_path, capsys):
    (tmp_path / "g.json").write_text(json.dumps(json.loads(preset("resnet20", InputSpec(3, 8, 8, 4)).to_json())))
    assert main(["export", str(tmp_path / "g.json"), "--format", "pt2", "-o", str(tmp_path / "m.onnx")]) == 2
    assert "must name a .pt2 file" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_onnx_without_the_extra_names_it_in_one_line(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxscript", None)  # `import onnxscript` raises ImportError
    assert main(["export", "resnet20", "--format", "onnx", "-o", str(tmp_path / "m.onnx")]) == 2
    error = capsys.readouterr().err.strip()
    assert "optinas[export]" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()
