"""The ``optinas`` command line: search, cost, export, reproduce, space, report.

Bad input of any kind (a flag, a file, a genotype) ends with one line on stderr and exit
code 2, never a traceback, and before anything is written under runs/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from search_space.errors import OptinasError

__all__ = ["main"]

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one sentence (no usage dump) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _search_parser(commands) -> None:
    parser = commands.add_parser(
        "search", help="run (or resume) an architecture search",
        description="Search architectures on a task, trading validation accuracy against "
                    "multiplications. Rerunning the same command resumes the study in runs/STUDY/.")
    parser.add_argument("--study", default="digits-demo", help="results go to RUNS/STUDY/ (default: digits-demo)")
    parser.add_argument("--trials", type=int, default=24, help="finished trials the study should hold (default: 24)")
    parser.add_argument("--task", default="digits", help="digits (default, bundled), cifar10, cifar100, mnist, "
                        "fashion-mnist, unit-ball, two-balls, xy-sign, or the path of an image folder or .tar.gz "
                        "(class-per-subfolder, optionally under train/ and test/)")
    parser.add_argument("--data-dir", metavar="DIR", help="root of torchvision-format data sets "
                        "(cifar-10-batches-py/, MNIST/raw/, ...; default: ./data)")
    parser.add_argument("--download", action="store_true", help="let torchvision fetch a missing data set "
                        "into --data-dir (needs internet)")
    parser.add_argument("--epochs", type=int, default=6, help="proxy training epochs per candidate (default: 6)")
    parser.add_argument("--train-fraction", type=float, default=1.0, metavar="F",
                        help="proxy: share of the training split each candidate trains on (default: 1)")
    parser.add_argument("--cuda-graphs", action="store_true", help="capture each candidate's training step "
                        "in a CUDA graph (GPU only; faster for small models)")
    parser.add_argument("--max-mults", metavar="N", help="budget: multiplications per image, e.g. 2e6 or 500k")
    parser.add_argument("--max-energy", metavar="E", help="budget: energy per image on --hardware, e.g. 5uJ "
                        "(pJ, nJ, uJ, mJ, J)")
    parser.add_argument("--max-params", metavar="N", help="budget: parameters, e.g. 50k")
    parser.add_argument("--max-storage", metavar="S", help="budget: model storage, e.g. 200KB, 1.5MiB or 800kbit")
    parser.add_argument("--max-latency-ms", metavar="MS", help="budget: measured batch-1 forward time on "
                        "--device, in ms (timed on the built model before training)")
    parser.add_argument("--hardware", metavar="PROFILE", help="energy profile: a shipped name "
                        "(horowitz45, int8_accelerator) or a .toml file (default: horowitz45)")
    parser.add_argument("--objectives", default="accuracy,mults", help="comma-separated: accuracy (maximised) "
                        "and any of mults, energy, params, storage, latency (minimised); accuracy alone is a "
                        "single-objective search (default: accuracy,mults)")
    parser.add_argument("--sampler", default="tpe", help="tpe (multivariate, grouped), nsga2, random, gp or gibbs "
                        "(default: tpe)")
    parser.add_argument("--pruner", default="median", help="median, hyperband or none: stops weak trials early "
                        "from per-epoch accuracy, in single-objective searches (default: median)")
    parser.add_argument("--width-multiplier", type=float, default=1.0, metavar="W",
                        help="proxy: train each candidate with widths scaled by W in (0, 1]; costs and "
                             "exports stay those of the real architecture (default: 1)")
    parser.add_argument("--resolution", type=int, metavar="PX", help="proxy: train on images resized to PX x PX")
    parser.add_argument("--trial-time-limit", type=float, metavar="S", help="a candidate still training after "
                        "S seconds fails with that reason and the search goes on (default: none)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes sharing the study on this "
                        "machine, e.g. several small trials on one GPU (default: 1)")
    parser.add_argument("--storage", metavar="URL", help="keep the study in this database (postgresql://..., "
                        "mysql+pymysql://...) so that `optinas worker` on other machines can join it")
    parser.add_argument("--backend", default="optuna", help="optuna (default) or ray (Ray Tune, with Optuna as "
                        "its searcher; ASHA for single-objective searches)")
    parser.add_argument("--address", metavar="ADDR", help="ray: the cluster to join, auto or HOST:PORT "
                        "(default: start a local Ray)")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0, metavar="N", help="ray: CPUs per trial (default: 1)")
    parser.add_argument("--gpus-per-trial", type=float, default=0.0, metavar="G", help="ray: GPUs per trial, "
                        "e.g. 0.25 for four trials per GPU (default: 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler, the split and training")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--space", metavar="FILE", help="search space TOML (default: the packaged one; "
                        "see `optinas space`)")
    parser.add_argument("--threads", type=int, help="CPU threads for training (default: half the cores)")
    parser.add_argument("--runs-dir", default="runs", help="where studies are stored (default: ./runs)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--presets", metavar="NAMES", help="comma-separated presets to evaluate first, adapted "
                        "to the task (e.g. resnet20,hb-net20), so the seed baselines join the Pareto front")
    parser.set_defaults(handler=_cmd_search)


def _cost_parser(commands) -> None:
    parser = commands.add_parser(
        "cost", help="per-layer cost table of a genotype or preset",
        description="Print ops (mul, add, xnor), BOPs, parameters, storage bits and energy per layer, "
                    "with totals in three views: everything; seed 000's convention (weighted layers "
                    "other than the first and the last); every weighted layer.")
    parser.add_argument("genotype", help="a genotype JSON file, a runs/<study>/best/<trial> folder, "
                                         "or a preset name (e.g. resnet20, resnet18)")
    parser.add_argument("--hardware", metavar="PROFILE", help="energy profile: a shipped name "
                        "(horowitz45, int8_accelerator) or a .toml file (default: horowitz45)")
    parser.add_argument("--input", metavar="CxHxW", help="count for this input size instead of the genotype's, "
                                                         "e.g. 3x224x224")
    parser.add_argument("--json", action="store_true", help="print the cost as JSON (layers, total, paper, weighted)")
    parser.set_defaults(handler=_cmd_cost)


def _export_parser(commands) -> None:
    parser = commands.add_parser("export", help="write a genotype as a standalone PyTorch file",
                                 description="Write one .py file that imports only torch and defines "
                                             "build_model(); with --weights, weights.pt goes beside it.")
    parser.add_argument("genotype", help="a genotype JSON file (or a runs/<study>/best/<trial> folder)")
    parser.add_argument("-o", "--output", default="model.py", help="output file (default: model.py)")
    parser.add_argument("--weights", help="a state_dict (.pt) of this genotype's model to copy beside the file")
    parser.set_defaults(handler=_cmd_export)


def _reproduce_parser(commands) -> None:
    parser = commands.add_parser(
        "reproduce", help="rerun a seed paper's experiment (table + figure under runs/reproduce/)",
        description="Rerun one of the seed papers' experiments; it writes table.md, table.json and "
                    "figure.html to RUNS/reproduce/NAME/. --list shows the experiments.")
    parser.add_argument("name", nargs="?", help="the experiment (see --list)")
    parser.add_argument("--list", action="store_true", help="list the experiments, one line each")
    parser.add_argument("--fast", action="store_true", help="a quick smoke setting (seconds), not the paper's")
    parser.add_argument("--epochs", type=int, help="training epochs (default: the paper's)")
    parser.add_argument("--depths", help="comma-separated depths, e.g. 10,20,30,40 (default: the paper's)")
    parser.add_argument("--batch-size", type=int, help="mini-batch size (default: the experiment's)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the data and training (default: 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--runs-dir", default="runs", help="results go to RUNS/reproduce/NAME/ (default: ./runs)")
    parser.add_argument("--data-dir", metavar="DIR", help="where a data set lives, for the experiments that need "
                        "one (default: $OPTINAS_DATA); --list says which")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(handler=_cmd_reproduce)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="optinas", description="Hardware-aware architecture search over "
                     "optimizer-inspired blocks and cheap arithmetic.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    _search_parser(commands)
    _cost_parser(commands)
    _export_parser(commands)
    _reproduce_parser(commands)
    _space_parser(commands)
    _report_parser(commands)
    _worker_parser(commands)
    return parser


def _report_parser(commands) -> None:
    parser = commands.add_parser(
        "report", help="rebuild runs/STUDY/report.html from the study's storage",
        description="Rebuild RUN_DIR/report.html from the trials in the study's storage (journal, SQLite "
                    "or database URL). It only reads the trials, so it is safe while a search runs.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the study's folder, e.g. runs/digits-demo")
    parser.add_argument("--storage", metavar="URL", help="database URL of the study (default: the storage "
                        "key of RUN_DIR/config.toml, else the journal file in RUN_DIR)")
    parser.set_defaults(handler=_cmd_report)


def _cmd_report(args) -> int:
    from .report import build_report

    summary = build_report(Path(args.run_dir), args.storage)
    print(f"wrote {summary.path}: {summary.trials} finished trials; Pareto front: trials "
          f"{', '.join(map(str, summary.front)) or 'none'}")
    return 0


def _space_parser(commands) -> None:
    parser = commands.add_parser(
        "space", help="print the search space and its size, or sample genotypes from it",
        description="Print every choice of the search space (the packaged default, or a TOML file) and "
                    "the exact number of distinct genotypes; with --sample N, print N genotypes as JSON lines.")
    parser.add_argument("--config", metavar="FILE", help="a search-space TOML file (default: the packaged "
                        "search_space/spaces/default.toml)")
    parser.add_argument("--task", default="digits", help="the task whose input shape and classes the space "
                        "is for (default: digits)")
    parser.add_argument("--sample", type=int, metavar="N", help="print N genotypes drawn uniformly, one JSON per line")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample (default: 0)")
    parser.set_defaults(handler=_cmd_space)


def _cmd_space(args) -> int:
    from evaluator import load_task

    from search_space import ConfigError, InputSpec, SearchSpace
    from search_space.space_toml import describe_space

    if args.sample is not None and not 1 <= args.sample <= 100_000:
        raise ConfigError(f"--sample must be between 1 and 100000, got {args.sample}")
    task = load_task(args.task, seed=0)
    channels, height, width = task.input_shape
    space = SearchSpace.from_toml(InputSpec(channels, height, width, task.num_classes), args.config)
    if args.sample is None:
        print(describe_space(space, args.config or "default.toml"), end="")
        return 0
    for genotype in space.sample_random(args.sample, args.seed):
        print(genotype.to_json())
    return 0


def _cmd_search(args) -> int:
    from .config import Budget, SearchConfig
    from .optuna_driver import run_search

    budget = Budget.from_flags(max_mults=args.max_mults, max_energy=args.max_energy, max_params=args.max_params,
                               max_storage=args.max_storage, max_latency_ms=args.max_latency_ms,
                               hardware=args.hardware)
    config = SearchConfig(study=args.study, task=args.task, trials=args.trials, seed=args.seed,
                          sampler=args.sampler, epochs=args.epochs, device=args.device,
                          threads=args.threads, space=Path(args.space) if args.space else None, budget=budget, runs_dir=Path(args.runs_dir),
                          data_dir=args.data_dir, download=args.download,
                          train_fraction=args.train_fraction, cuda_graphs=args.cuda_graphs,
                          objectives=args.objectives, pruner=args.pruner, width_multiplier=args.width_multiplier,
                          resolution=args.resolution, trial_time_limit_s=args.trial_time_limit,
                          workers=args.workers, storage=args.storage,
                          backend=args.backend, address=args.address, cpus_per_trial=args.cpus_per_trial,
                          gpus_per_trial=args.gpus_per_trial)
    presets = tuple(name.strip() for name in args.presets.split(",") if name.strip()) if args.presets else ()
    summary = run_search(config, show_progress=not args.quiet, presets=presets)
    _print_summary(summary)
    return 0


def _print_summary(summary) -> None:
    pruned = f", {summary.pruned} pruned" if summary.pruned else ""
    print(f"{summary.finished} trials in {summary.run_dir}: {summary.trained} trained, "
          f"{summary.infeasible} over budget{pruned}, {summary.failed} failed ({summary.seconds:.0f}s this run)")
    print(f"Pareto front: trials {', '.join(map(str, summary.front)) or 'none'}; "
          f"report: {summary.run_dir / 'report.html'}; models: {summary.run_dir / 'best'}/")


def _worker_parser(commands) -> None:
    parser = commands.add_parser(
        "worker", help="join a search whose study lives in a database",
        description="Run trials of a study created by `optinas search --storage URL`, with that search's "
                    "settings, until the study holds its requested number of trials. Start one per "
                    "machine (or per GPU); a worker that dies is noticed by the heartbeat and its trial retried.")
    parser.add_argument("--study", required=True, help="the study's name")
    parser.add_argument("--storage", required=True, metavar="URL", help="the database URL the search was started with")
    parser.add_argument("--runs-dir", default="runs", help="where this worker keeps checkpoints and exports "
                        "(default: ./runs)")
    parser.add_argument("--device", help="auto, cpu or cuda (default: the search's)")
    parser.add_argument("--threads", type=int, help="CPU threads for training (default: half the cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(handler=_cmd_worker)


def _cmd_worker(args) -> int:
    from .remote import join_study

    summary = join_study(args.study, args.storage, runs_dir=Path(args.runs_dir), device=args.device,
                         threads=args.threads, show_progress=not args.quiet)
    _print_summary(summary)
    return 0


def _cost_target(text: str, input_text: str | None):
    """The genotype ``optinas cost`` counts: a file or folder, else a preset; ``--input`` resized."""
    import re
    from dataclasses import replace

    from search_space import ConfigError, InputSpec, load_genotype

    if Path(text).exists() or text.endswith(".json") or "/" in text or "\\" in text:
        genotype = load_genotype(text)
    else:
        from search_space.presets import preset

        genotype = preset(text)
    if input_text is None:
        return genotype
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*[xX]\s*(\d+)\s*", input_text)
    if not match or min(int(group) for group in match.groups()) < 1:
        raise ConfigError(f"--input must be CxHxW with positive integers, e.g. 3x32x32; got {input_text!r}")
    channels, height, width = (int(group) for group in match.groups())
    spec = InputSpec(channels, height, width, genotype.input.classes)
    try:
        return replace(genotype, input=spec)
    except OptinasError as error:
        raise ConfigError(f"--input {input_text}: {error}") from None


def _cmd_cost(args) -> int:
    import json

    from search_space import count_cost

    from .results import cost_table_text

    genotype = _cost_target(args.genotype, args.input)
    cost = count_cost(genotype, args.hardware)
    if args.json:
        print(json.dumps(cost.to_dict(), indent=2))
    else:
        print(cost_table_text(genotype, cost), end="")
    return 0


def _cmd_export(args) -> int:
    from .exporting import export_to_file

    path = export_to_file(args.genotype, Path(args.output), args.weights)
    print(f"wrote {path}" + (f" and {path.parent / 'weights.pt'}" if args.weights else ""))
    return 0


def _cmd_reproduce(args) -> int:
    from search_space.errors import ConfigError

    from .reproduce import ReproduceOptions, list_text, parse_depths, reproduce

    if args.list:
        print(list_text())
        return 0
    if not args.name:
        raise ConfigError("name an experiment (optinas reproduce NAME) or pass --list to see them")
    options = ReproduceOptions(fast=args.fast, epochs=args.epochs, batch_size=args.batch_size,
                               depths=parse_depths(args.depths) if args.depths else None,
                               seed=args.seed, device=args.device, runs_dir=Path(args.runs_dir),
                               quiet=args.quiet, data_dir=args.data_dir)
    print(reproduce(args.name, options))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``optinas`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except OptinasError as error:
        print(f"optinas {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"optinas {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
