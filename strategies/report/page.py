"""report.html: the story of a search, rebuilt from the study's storage at any time.

``optinas report runs/<study>`` (``build_report``) only reads the storage (journal file,
SQLite file or database URL), so it is safe while a search - local, several workers or Ray -
is still writing to it; the page is swapped in atomically. ``finish.write_outputs`` calls
``write_report`` at the end of a search with the rows it already holds. The page is one
file with plotly.js embedded once, so it works offline.
"""

from __future__ import annotations

import html
import random
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import optuna

from optinas.search_space.errors import ConfigError, OptinasError
from optinas.strategies.files import read_toml, write_text_atomic
from optinas.strategies.objectives import accuracy_index, objectives_of
from optinas.strategies.report.breakdown import energy_breakdown
from optinas.strategies.report.figures import (
    breakdown_figure,
    front_figure,
    hypervolume_figure,
    importance_figure,
    row_label,
)
from optinas.strategies.report.sections import (
    budget_from_config,
    counted_trials,
    counts_section,
    front_table,
    reference_text,
)
from optinas.strategies.results.hypervolume import hypervolume_history, reference_point
from optinas.strategies.results.records import pareto_front, trial_rows
from optinas.strategies.status import TrialStatus
from optinas.strategies.storage import describe, is_database_url, open_storage

__all__ = ["write_report", "build_report", "load_report_study", "ReportSummary", "MIN_IMPORTANCE_TRIALS",
           "MAX_IMPORTANCE_TRIALS"]

MIN_IMPORTANCE_TRIALS = 5  # fANOVA fits a random forest; fewer trained trials say nothing
# fANOVA's forests grow with the trials; a seeded sample of this many keeps a 10,000-trial
# report to seconds (the page says when a sample was used).
MAX_IMPORTANCE_TRIALS = 500
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; } code { background: #f4f4f4; padding: 0 3px; }
td, th { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.note { color: #666; font-size: 90%; } section { margin-bottom: 2.5em; }
"""


@dataclass(frozen=True)
class ReportSummary:
    """What ``build_report`` wrote: the page, how many finished trials it shows, the front."""

    path: Path
    trials: int
    front: tuple[int, ...]


def _config(run_dir: Path) -> dict:
    path = run_dir / "config.toml"
    return read_toml(path) if path.exists() else {}


def load_report_study(run_dir: Path, storage_url: str | None = None):
    """The study stored in ``run_dir`` (or at ``storage_url``, else config.toml's ``storage``),
    opened for reading, and its config.toml as a dict.

    Raises:
        ConfigError: when ``run_dir`` is not a study folder (one sentence, nothing written).
    """

    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a folder; give a study folder such as runs/digits-demo")
    if not (run_dir / "config.toml").is_file():
        raise ConfigError(f"{run_dir} holds no optinas study (no config.toml); give a folder "
                          "written by optinas search, such as runs/digits-demo")
    config = _config(run_dir)
    url = storage_url or config.get("storage")
    if not is_database_url(url) and not any((run_dir / name).is_file() for name in ("study.journal", "study.db")):
        raise ConfigError(f"{run_dir} has a config.toml but no trials (no study.journal or study.db); "
                          "run optinas search first")
    if not config.get("study"):
        raise ConfigError(f"{run_dir / 'config.toml'} names no study (key 'study'); it was not written by "
                          "optinas search")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            # open_storage sets a heartbeat on database storages (experimental in Optuna);
            # a reader never beats, so the warning says nothing here.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = open_storage(run_dir, url)
        study = optuna.load_study(study_name=str(config["study"]), storage=storage)
    except KeyError:
        raise ConfigError(f"study {config['study']!r} is not in {describe(run_dir, url)}; check the "
                          "storage key of config.toml") from None
    return study, config


def build_report(run_dir: Path, storage_url: str | None = None) -> ReportSummary:
    """Rebuild ``run_dir/report.html`` from the study's storage; reads, never writes, the trials."""

    study, config = load_report_study(run_dir, storage_url)
    rows = trial_rows(study)
    front = pareto_front(rows, objectives_of(config))  # the front finish.write_outputs exports to best/
    path = write_report(run_dir, rows, front, study.study_name, study=study, config=config)
    return ReportSummary(path, counted_trials(rows), tuple(row["number"] for row in front))


def _importances(study, rows: list[dict], objectives) -> tuple[dict[str, float] | None, str]:
    """fANOVA importances for validation accuracy over the trained, sampled trials, or why not.

    Presets (no parameters), infeasible trials (accuracy 0 by convention, never trained) and
    parameters that are conditional, differently distributed or single-valued are left out:
    each would measure the bookkeeping rather than the architecture.
    """

    if study is None:
        return None, "Parameter importances need the study's storage; run optinas report on this folder."
    accuracy = accuracy_index(objectives)
    trained = {row["number"] for row in rows if row["status"] == TrialStatus.TRAINED}
    trials = [trial for trial in study.get_trials(deepcopy=False)
              if trial.number in trained and trial.params and trial.values is not None]
    sampled = len(trials) > MAX_IMPORTANCE_TRIALS
    if sampled:
        trials = sorted(random.Random(0).sample(trials, MAX_IMPORTANCE_TRIALS), key=lambda trial: trial.number)
    if len(trials) < MIN_IMPORTANCE_TRIALS:
        return None, (f"Parameter importances need at least {MIN_IMPORTANCE_TRIALS} trained, sampled trials; "
                      f"this study has {len(trials)} so far.")
    every = set.union(*(set(trial.params) for trial in trials))
    shared = set.intersection(*(set(trial.params) for trial in trials))
    names = sorted(name for name in shared
                   if len({repr(trial.distributions[name]) for trial in trials}) == 1
                   and len({repr(trial.params[name]) for trial in trials}) > 1)
    left_out = (f"{len(every) - len(shared)} conditional (not sampled in every trial), "
                f"{len(shared) - len(names)} with a single value or with ranges that vary")
    if not names:
        return None, (f"No parameter varies across all {len(trials)} trained trials ({left_out}), so there is "
                      "nothing to rank yet.")
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the scratch study's creation is no news
    try:
        copy = optuna.create_study(direction="maximize")
        copy.add_trials([optuna.trial.create_trial(
            params={name: trial.params[name] for name in names},
            distributions={name: trial.distributions[name] for name in names},
            value=trial.values[accuracy]) for trial in trials])
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        importances = optuna.importance.get_param_importances(copy, evaluator=evaluator, params=names)
    except (ValueError, RuntimeError) as error:
        return None, f"Parameter importances could not be computed: {error}"
    finally:
        optuna.logging.set_verbosity(verbosity)
    sample = " (a seeded random sample)" if sampled else ""
    note = (f"fANOVA over {len(trials)} trained trials{sample} and {len(names)} parameter{'s' * (len(names) != 1)}; "
            f"left out: {left_out}.")
    return dict(importances), note


def _breakdowns(front: list[dict]) -> tuple[dict, dict, list[str], list[str]]:
    """Energy split of each front model by operation type and by layer kind, the problems met,
    and the hardware profiles used."""

    parts, kinds, problems, hardware = {}, {}, [], set()
    for row in front:
        try:
            split = energy_breakdown(row["genotype"], row.get("hardware"))
        except (OptinasError, TypeError) as error:
            problems.append(f"{row_label(row)}: {error}")
            continue
        parts[row["number"]], kinds[row["number"]] = split.parts, split.kinds
        hardware.add(split.hardware)
        stored = (row.get("cost") or {}).get("energy_pj")
        if stored and abs(split.total - stored) > 1e-6 * abs(stored):
            problems.append(f"{row_label(row)}: recounted at {split.total:.6g} pJ, recorded at {stored:.6g} pJ "
                            "(the cost model changed since the trial ran)")
    return parts, kinds, problems, sorted(hardware)


def _figure_html(figure, first: list[bool]) -> str:
    include = first[0]
    first[0] = False  # plotly.js goes into the page once, with the first figure
    return figure.to_html(full_html=False, include_plotlyjs=include, config={"displaylogo": False})


def write_report(run_dir: Path, rows: list[dict], front: list[dict], study_name: str,
                 study=None, config: dict | None = None) -> Path:
    """Write ``run_dir/report.html`` (atomically) and return its path.

    Args:
        run_dir: the study's folder; front models link to ``best/<trial>/model.py`` in it.
        rows: ``results.trial_rows(study)``.
        front: the Pareto-front rows (as exported to ``best/``).
        study_name: the study's name, for the title.
        study: the Optuna study; needed for parameter importances (a sentence replaces them without).
        config: config.toml as a dict; read from ``run_dir`` when None.
    """

    config = _config(run_dir) if config is None else config
    objectives = objectives_of(config)
    reference = reference_point(objectives, rows, budget_from_config(config))
    stated = reference_text(objectives, reference, config)
    first = [True]
    sections = [f"<section><h2>Pareto front</h2>{_figure_html(front_figure(rows, front, objectives), first)}"
                f"{front_table(run_dir, front, objectives)}</section>"]
    sections.append(_hypervolume_section(rows, objectives, reference, stated, first))
    importances, note = _importances(study, rows, objectives)
    sections.append("<section><h2>Parameter importances</h2>"
                    + (_figure_html(importance_figure(importances), first) if importances else "")
                    + f"<p class=\"note\">{html.escape(note)}</p></section>")
    sections.append(_breakdown_section(front, first))
    sections.append(counts_section(rows, study))
    finished = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    backend = f", run by the {html.escape(str(config['backend']))} backend" if config.get("backend") else ""
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>optinas: {html.escape(study_name)}</title>
<style>{_STYLE}</style></head><body>
<h1>optinas search <code>{html.escape(study_name)}</code></h1>
<p>Task {html.escape(str(config.get('task', '?')))}, sampler {html.escape(str(config.get('sampler', '?')))},
seed {html.escape(str(config.get('seed', '?')))}, proxy epochs {html.escape(str(config.get('epochs', '?')))}{backend};
objectives: {html.escape(', '.join(f'{o.label} ({o.direction})' for o in objectives))}.
{counted_trials(rows)} finished trials of {html.escape(str(config.get('trials', '?')))} requested. Built {finished}.</p>
{''.join(sections)}
</body></html>
"""
    path = run_dir / "report.html"
    write_text_atomic(path, page)
    return path


def _hypervolume_section(rows: list[dict], objectives, reference: dict, stated: str, first: list[bool]) -> str:

    history = hypervolume_history(rows, objectives, reference)
    figure = _figure_html(hypervolume_figure(history, stated), first) if history else "<p>No finished trial yet.</p>"
    return (f"<section><h2>Hypervolume over trials</h2><p>Reference point: {html.escape(stated)}. Costs are "
            "divided by the reference and accuracy is mapped to 1 - accuracy, so the hypervolume is the share "
            "of the unit box the trials dominate (1 would be a free, perfect model); trials beyond the "
            f"reference add nothing.{_latest(history)}</p>{figure}</section>")


def _latest(history: list[tuple[int, float]]) -> str:
    return f" After trial {history[-1][0]}: hypervolume {history[-1][1]:.4f}." if history else ""


def _breakdown_section(front: list[dict], first: list[bool]) -> str:
    parts, kinds, problems, hardware = _breakdowns(front)
    profiles = html.escape(", ".join(hardware) or "-")
    body = ["<section><h2>Energy breakdown of the front</h2>",
            f"<p>Energy per image of each front model on the hardware profile it was searched on "
            f"({profiles}), split by operation type (memory is the weight reads and the activation writes "
            "and reads of the cost model's two-level memory) and by layer kind. Each bar sums to the "
            "model's recorded energy.</p>"]
    if parts:
        body.append(_figure_html(breakdown_figure(front, parts, "Energy by operation type"), first))
        body.append(_figure_html(breakdown_figure(front, kinds, "Energy by layer kind", colours={}), first))
    else:
        body.append("<p>No model on the front yet.</p>")
    body.extend(f"<p class=\"note\">{html.escape(problem)}</p>" for problem in problems)
    return "".join(body) + "</section>"
