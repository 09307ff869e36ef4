"""How good a candidate is: tasks, the device-resident data path, and short proxy training.

Typical use::

    from optinas.evaluator import Fidelity, evaluate, load_task, proxy_genotype, resolve_device
    from optinas.search_space import InputSpec, build_model
    from optinas.search_space.presets import preset

    task = load_task("digits", seed=0)     # or "cifar10", "unit-ball", "path/to/images.tar.gz"
    genotype = preset("resnet20", InputSpec(*task.input_shape, task.num_classes))
    fidelity = Fidelity(epochs=8)          # width_multiplier, resolution, train_fraction: proxies
    model = build_model(proxy_genotype(genotype, fidelity))
    result = evaluate(model, task, fidelity, device=resolve_device("auto"), seed=0)
    print(result.val_accuracy)

Imports from the project go one way: ``evaluator`` may use ``search_space``, never
``strategies``.
"""

from .datasets import TASK_NAMES, load_task
from .failures import FAILURE_KINDS, TrialFailed
from .fidelity import EvalResult, Fidelity
from .loader import batch_crop, batch_flip_lr, resize_images, resolve_device
from .proxy import proxy_genotype, scale_widths
from .tasks import TASK_KINDS, Task
from .train import evaluate

__all__ = [
    "Task",
    "TASK_NAMES",
    "TASK_KINDS",
    "load_task",
    "Fidelity",
    "EvalResult",
    "TrialFailed",
    "FAILURE_KINDS",
    "evaluate",
    "resolve_device",
    "batch_crop",
    "batch_flip_lr",
    "resize_images",
    "scale_widths",
    "proxy_genotype",
]
