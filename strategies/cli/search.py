"""``optinas search``: run (or resume) an architecture search."""

from __future__ import annotations

from pathlib import Path

from optinas.search_space.packaged_spaces import PACKAGED_SPACES
from optinas.strategies.cli.common import print_summary
from optinas.strategies.cli.paths import input_file, input_folder, output_folder
from optinas.strategies.config import Budget, SearchConfig
from optinas.strategies.search import run_search

__all__ = ["add_parser", "run"]


def add_parser(commands) -> None:
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
    parser.add_argument("--objectives", default="accuracy,energy", help="comma-separated: accuracy (maximised) "
                        "and any of mults, energy, params, storage, latency (minimised); accuracy alone is a "
                        "single-objective search (default: accuracy,energy)")
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
                        "to the task (e.g. resnet20,hb-net20), so the papers' baselines join the Pareto front")
    parser.set_defaults(handler=run)


def check_paths(config: SearchConfig) -> None:
    """The folders and files a search reads and writes, before it starts (cli/paths.py)."""
    output_folder(config.run_dir, "--runs-dir")
    if config.space is not None and not (str(config.space) in PACKAGED_SPACES and not config.space.exists()):
        input_file(config.space, "--space")
    if config.data_dir is not None:
        if config.download:
            output_folder(config.data_dir, "--data-dir")
        elif config.data_dir.exists():
            input_folder(config.data_dir, "--data-dir")


def run(args) -> int:

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
    check_paths(config)
    presets = tuple(name.strip() for name in args.presets.split(",") if name.strip()) if args.presets else ()
    summary = run_search(config, show_progress=not args.quiet, presets=presets)
    print_summary(summary)
    return 0
