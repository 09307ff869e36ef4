"""Progress of a running search on the terminal (rich), one line per finished trial."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from optinas.strategies.objectives import accuracy_index
from optinas.strategies.status import NOT_COUNTED, WITH_ACCURACY, TrialStatus, trial_status

__all__ = ["TerminalProgress", "SearchProgress"]


class TerminalProgress:
    """A rich display on the terminal that can be switched off (``enabled``); a subclass builds
    ``self.progress`` in ``__enter__``."""

    enabled: bool

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.progress.__exit__(*exc)

    def note(self, text: str) -> None:
        if self.enabled:
            self.progress.console.print(text)


def _short(count: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= size:
            return f"{count / size:.2f}{unit}"
    return f"{int(count)}"


class SearchProgress(TerminalProgress):
    """A progress bar over the requested trials plus a line per trial."""

    def __init__(self, config, already: int, enabled: bool = True):
        self.config = config
        self.already = already
        self.enabled = enabled
        self.best = 0.0
        self.accuracy = accuracy_index(config.objective_list)  # --objectives mults,accuracy: values[1]

    def __enter__(self) -> "SearchProgress":
        if not self.enabled:
            return self

        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("best val acc {task.fields[best]:.4f}"))
        self.progress.__enter__()
        self.task = self.progress.add_task(f"search {self.config.study}", total=self.config.trials,
                                           completed=self.already, best=0.0)
        return self


    def trial_done(self, trial) -> None:
        """One line for a finished trial (an ``optuna.trial.FrozenTrial``)."""

        if not self.enabled:
            return
        attrs, status = trial.user_attrs, trial_status(trial)
        cost = attrs.get("cost", {})
        if status in WITH_ACCURACY:
            accuracy = trial.values[self.accuracy]
            self.best = max(self.best, accuracy)
            seconds = attrs.get("metrics", {}).get("wall_time_s", 0.0)
            detail = f"val acc {accuracy:.4f}  {seconds:5.1f}s" + ("  (reused)" if status == TrialStatus.REUSED else "")
        elif status == TrialStatus.INFEASIBLE:
            detail = "over budget, not trained"
        elif status == TrialStatus.PRUNED:
            detail = f"pruned after epoch {attrs.get('pruned_at_epoch', '?')}"
        elif status in NOT_COUNTED:
            return  # not counted; its parameters are queued again
        else:
            detail = f"failed: {attrs.get('failure', 'unknown reason')}"
        self.progress.console.print(
            f"trial {trial.number:>4}  mults {_short(cost.get('mul', 0)):>8}  "
            f"params {_short(cost.get('params', 0)):>7}  {detail}")
        self.progress.update(self.task, advance=1, best=self.best)
