"""How good a candidate is: tasks, the device-resident data path, and short proxy training.

Typical use::

    from evaluator import Fidelity, evaluate, load_task, resolve_device

    task = load_task("digits", seed=0)
    result = evaluate(model, task, Fidelity(epochs=8), device=resolve_device("auto"), seed=0)
    print(result.val_accuracy)

Imports from the project go one way: ``evaluator`` may use ``search_space``, never
``strategies``.
"""

from .failures import FAILURE_KINDS, TrialFailed
from .fidelity import EvalResult, Fidelity
from .loader import batch_crop, batch_flip_lr, resolve_device
from .tasks import TASK_NAMES, Task, load_task
from .train import evaluate

__all__ = [
    "Task",
    "TASK_NAMES",
    "load_task",
    "Fidelity",
    "EvalResult",
    "TrialFailed",
    "FAILURE_KINDS",
    "evaluate",
    "resolve_device",
    "batch_crop",
    "batch_flip_lr",
]
