"""``optinas train``: train one architecture from scratch at full fidelity (resumable)."""

from __future__ import annotations

from pathlib import Path

from optinas.evaluator.distributed import world_from_env
from optinas.search_space.errors import ConfigError
from optinas.strategies.cli.paths import input_folder, output_folder
from optinas.strategies.training.front import train_front
from optinas.strategies.training.run import train_target
from optinas.strategies.training.settings import TrainSettings

__all__ = ["add_parser", "run"]


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "train", help="train one architecture from scratch at full fidelity",
        description="Train a genotype file, a runs/STUDY/best/N model or a preset (adapted to the task) "
                    "with the layer kinds' recipes. Results go to RUNS/train/NAME/ (a best/N model: "
                    "runs/STUDY/final/N/). Rerunning the same command resumes after the last finished "
                    "epoch; under `torchrun --nproc-per-node K` it trains data-parallel.")
    parser.add_argument("target", help="a genotype JSON file, a runs/STUDY/best/N folder, a preset name "
                        "(e.g. resnet20-adder), or with --front a runs/STUDY folder")
    parser.add_argument("--front", action="store_true", help="retrain every model of the study's Pareto "
                        "front and write final/front.md and front.json: proxy vs final accuracy, Spearman rho")
    parser.add_argument("--task", help="as in search (default: digits, or the study's task for its models)")
    parser.add_argument("--data-dir", metavar="DIR", help="root of torchvision-format data sets (default: ./data)")
    parser.add_argument("--download", action="store_true", help="let torchvision fetch a missing data set")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (default: 30)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step, over all torchrun "
                        "processes (default: 64, as the search)")
    parser.add_argument("--lr", type=float, default=0.05, help="peak learning rate of Nesterov SGD (default: 0.05)")
    parser.add_argument("--warmup", type=float, default=1.0, metavar="EPOCHS",
                        help="linear warm-up, in epochs (default: 1)")
    parser.add_argument("--schedule", default="cosine", help="decay after the warm-up: cosine or linear "
                        "(default: cosine)")
    parser.add_argument("--name", help="results go to RUNS/train/NAME/ (default: the preset or file name)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, the initial weights and "
                        "the data order (default: 0)")
    parser.add_argument("--threads", type=int, help="CPU threads for training (default: half the cores)")
    parser.add_argument("--runs-dir", default="runs", help="where results are stored (default: ./runs)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(handler=run)


def run(args) -> int:
    settings = TrainSettings(target=args.target, task=args.task, data_dir=args.data_dir, download=args.download,
                             epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                             warmup_epochs=args.warmup, schedule=args.schedule, name=args.name,
                             device=args.device, seed=args.seed, threads=args.threads,
                             runs_dir=Path(args.runs_dir))
    output_folder(settings.runs_dir, "--runs-dir")  # a file or a read-only folder: one sentence, before training
    if args.data_dir is not None and not args.download and Path(args.data_dir).exists():
        input_folder(Path(args.data_dir), "--data-dir")
    if args.front:
        table, folder = train_front(settings, show_progress=not args.quiet)
        if not world_from_env().is_main:
            return 0
        rho = table["spearman"]
        print(f"retrained {len(table['models'])} front models into {folder}/; Spearman rho of proxy vs final "
              f"accuracy: {'n/a' if rho is None else f'{rho:.3f}'} (table: {folder / 'front.md'})")
        return 0
    if Path(args.target).is_dir() and (Path(args.target) / "best").is_dir():
        raise ConfigError(f"{args.target!r} is a study folder; add --front to retrain its Pareto front, "
                          "or name one model as runs/STUDY/best/N")
    outcome = train_target(settings, show_progress=not args.quiet)
    if not world_from_env().is_main:
        return 0  # under torchrun, rank 0 speaks for all
    state = "already finished; nothing trained" if outcome.already_finished else "trained"
    print(f"{outcome.label}: {state}; test accuracy {outcome.test_accuracy:.4f}, results in {outcome.run_dir}/")
    return 0
