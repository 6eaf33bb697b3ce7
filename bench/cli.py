"""The thin command layer: ``arbench run | list | validate | table | compare | train | data |
perf | site | demo``. Errors print one line and exit 2 (``--debug`` shows the traceback)."""

from __future__ import annotations

import argparse
import sys
import time
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from bench.errors import BenchError, SpecError

if TYPE_CHECKING:
    from rich.console import Console

EXAMPLES = """examples:
  arbench list
  arbench run digits --model baseline:lecture-cnn
  arbench run --suite embedded --model baseline:logreg
  arbench run synthetic-depth,nyu-depth --model depth-unet --format latex
  arbench run digits --model my_cnn.pt --arch mypkg.nets:make_cnn
  arbench run mnist --model lenet5 --set dataset.root=/data/mnist --device cuda
  arbench table digits --format latex --reference logreg
  arbench compare digits --models logreg lecture-cnn --reference logreg
  arbench validate bench/tasks/digits.yaml
  arbench run digits --model logreg --save-predictions && arbench rescore results/digits/logreg/RUN
  arbench site --out site/
"""


@cache
def console() -> Console:
    """The shared rich console; rich is imported on first output, not at startup."""
    from rich.console import Console

    return Console()


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY.PATH=VALUE", help="override a spec field (repeatable)")
    parser.add_argument("--device", help="cuda, cuda:1 or cpu (default: cuda when available)")
    parser.add_argument("--batch-size", type=int, help="override the spec's batch size")
    parser.add_argument("--limit", type=int, help="evaluate only the first N samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results", help="results directory (default results/)")
    parser.add_argument("--no-leaderboard", action="store_true", help="do not append a row")
    parser.add_argument("--leaderboard-dir", help="leaderboards directory (default leaderboards/)")
    parser.add_argument("--amp", action="store_true", help="automatic mixed precision")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="arbench", description="Evaluation benchmark suite for deep learning in AR.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="evaluate a model on a task", epilog=EXAMPLES,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("task", nargs="?",
                     help="task name (see `arbench list`), path to a spec YAML, or TASK1,TASK2")
    run.add_argument("--suite", help="run every task of a suite (bench/suites/NAME.yaml) that "
                     "fits the model")
    run.add_argument("--strict", action="store_true",
                     help="with several tasks: a task whose data is missing is an error")
    run.add_argument("--format", default="md", choices=["md", "latex", "csv", "html"],
                     help="with several tasks: format of the task x metric table")
    run.add_argument("--save-predictions", action="store_true",
                     help="write the predictions batch by batch into the run folder, in the "
                     "family's --predictions format (for `arbench rescore` and --resume)")
    run.add_argument("--log", choices=["mlflow"],
                     help="also record the run in an experiment tracker (extra: .[mlflow])")
    run.add_argument("--tracking-uri", help="MLflow tracking URI (default: file store "
                     "OUT/mlruns)")
    run.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN_DIR",
                     help="continue the newest unfinished --save-predictions run of this task "
                     "and model (or RUN_DIR): committed batches are not predicted again")
    run.add_argument("--model", help="baseline:NAME, FILE.pt/.pt2, or module:function")
    run.add_argument("--predictions", help="a predictions file in the family's format")
    run.add_argument("--arch", help="module:factory building the network of a state_dict")
    run.add_argument("--name", help="model name for the leaderboard")
    run.add_argument("--trust-checkpoint", action="store_true",
                     help="allow checkpoints that need full unpickling (runs their code!)")
    _run_options(run)

    rescore = sub.add_parser("rescore", help="score a run's saved predictions again (no model)",
                             epilog="example:\n  arbench rescore results/digits/logreg/RUN_ID "
                             "--set metrics.3.params.bins=10",
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    rescore.add_argument("run_dir", help="folder of a finished --save-predictions run")
    rescore.add_argument("--set", dest="overrides", action="append", default=[],
                         metavar="KEY.PATH=VALUE", help="override a spec field (repeatable)")
    rescore.add_argument("--device")
    rescore.add_argument("--out", help="results directory (default: the run's own)")
    rescore.add_argument("--no-leaderboard", action="store_true")
    rescore.add_argument("--leaderboard-dir")

    sweep = sub.add_parser(
        "sweep", help="models x tasks, one job each, through submitit (Slurm or local)",
        epilog="examples:\n  arbench sweep --models logreg lenet5 --tasks digits --jobs 2\n"
        "  arbench sweep --models depth-unet constant-median --suite depth --executor slurm "
        "--slurm-partition gpu --gpus-per-job 1 --timeout-min 120",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("--models", nargs="+", required=True)
    sweep.add_argument("--tasks", nargs="+", help="task names")
    sweep.add_argument("--suite", help="every task of a suite (bench/suites/NAME.yaml)")
    sweep.add_argument("--executor", default="local", choices=["local", "slurm"])
    sweep.add_argument("--jobs", type=int, default=2, help="jobs running at a time (default 2)")
    sweep.add_argument("--slurm-partition")
    sweep.add_argument("--gpus-per-job", type=int, default=0)
    sweep.add_argument("--timeout-min", type=int, default=60)
    sweep.add_argument("--logs", help="submitit log folder (default OUT/sweeps/<time>)")
    sweep.add_argument("--format", default="md", choices=["md", "latex", "csv", "html"])
    sweep.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY.PATH=VALUE", help="override a spec field (repeatable)")
    sweep.add_argument("--device")
    sweep.add_argument("--batch-size", type=int)
    sweep.add_argument("--limit", type=int, help="evaluate only the first N samples")
    sweep.add_argument("--out", default="results")
    sweep.add_argument("--leaderboard-dir")

    sub.add_parser("list", help="tasks, adapters, metrics, baselines, embedded data sets")

    validate = sub.add_parser("validate", help="check a task spec (every error at once)")
    validate.add_argument("spec", help="task name or spec YAML")
    validate.add_argument("--set", dest="overrides", action="append", default=[])
    validate.add_argument("--no-smoke", action="store_true", help="skip the one-sample run")

    table = sub.add_parser("table", help="print a result table from a leaderboard")
    table.add_argument("source", help="task name or leaderboard CSV")
    table.add_argument("--format", default="md", choices=["md", "latex", "csv", "html"])
    table.add_argument("--reference", help="model to compare against (relative change)")
    table.add_argument("--runs", default="best", choices=["best", "latest"])
    table.add_argument("--leaderboard-dir")

    compare = sub.add_parser("compare", help="run what is missing and print a comparison")
    compare.add_argument("task")
    compare.add_argument("--models", nargs="+", required=True)
    compare.add_argument("--reference", help="default: the first model")
    compare.add_argument("--format", default="md", choices=["md", "latex", "csv", "html"])
    _run_options(compare)

    train = sub.add_parser("train", help="train a baseline on a task's train split")
    train.add_argument("baseline")
    train.add_argument("--task", help="default: the baseline's own training task")
    train.add_argument("--device")
    train.add_argument("--epochs", type=int)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", help="weights file (default baselines/weights/NAME.TASK.pt)")
    train.add_argument("--set", dest="overrides", action="append", default=[])

    data = sub.add_parser("data", help="build embedded data sets or download real ones")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    build = data_sub.add_parser("build", help="build embedded data sets (offline)")
    build.add_argument("names", nargs="*", help="default: every embedded set")
    get = data_sub.add_parser("get", help="download a real data set with checksums")
    get.add_argument("name", choices=["mnist"])
    get.add_argument("--root", help="target directory (default DATA_ROOT/NAME)")

    perf = sub.add_parser("perf", help="speed benchmarks (ratios vs hand-written loops)")
    perf.add_argument("cases", nargs="*", help="default: every case")
    perf.add_argument("--device")

    site = sub.add_parser("site", help="write the static leaderboard web site")
    site.add_argument("--out", default="site", help="site folder (default site/)")
    site.add_argument("--leaderboard-dir", help="leaderboards directory (default leaderboards/)")

    demo = sub.add_parser("demo", help="every embedded task with every baseline, then tables")
    demo.add_argument("--tasks", nargs="*", help="default: every task with embedded data")
    demo.add_argument("--site", default="site",
                      help="folder of the leaderboard site it builds (default site/)")
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    if args.suite or (args.task and "," in args.task):
        return _run_many(args)
    if not args.task:
        raise BenchError("no task given", "pass TASK, TASK1,TASK2 or --suite NAME")
    from bench.runner import evaluate

    result = evaluate(
        args.task, args.model, overrides=args.overrides, device=args.device,
        batch_size=args.batch_size, limit=args.limit, seed=args.seed, out_dir=args.out,
        leaderboard=not args.no_leaderboard, leaderboard_dir=args.leaderboard_dir,
        amp=args.amp, workers=args.workers, arch=args.arch, predictions=args.predictions,
        trust_checkpoint=args.trust_checkpoint, name=args.name,
        save_predictions=args.save_predictions, resume=args.resume,
    )
    show_result(result)
    if args.log == "mlflow":
        from bench.campaign.tracking import log_to_mlflow

        run_id = log_to_mlflow(result, args.tracking_uri)
        console().print(f"recorded in MLflow as run {run_id}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from bench.campaign.suites import load_suite
    from bench.campaign.sweep import run_sweep, sweep_table

    if bool(args.tasks) == bool(args.suite):
        raise BenchError("give either --tasks T1 T2 or --suite NAME")
    tasks = args.tasks or load_suite(args.suite).task_list()
    sweep = run_sweep(
        args.models, tasks, executor=args.executor, jobs=args.jobs, out_dir=args.out,
        leaderboard_dir=args.leaderboard_dir, overrides=args.overrides, limit=args.limit,
        log_dir=args.logs, slurm_partition=args.slurm_partition,
        gpus_per_job=args.gpus_per_job, timeout_min=args.timeout_min, device=args.device,
        batch_size=args.batch_size)
    print(sweep_table(sweep, args.format), end="")
    done = sum(cell.status == "done" for cell in sweep.cells)
    ran = sum(cell.status == "ok" for cell in sweep.cells)
    print(f"{ran} job(s) ran, {done} cell(s) already in the leaderboards, "
          f"{len(sweep.failed)} failed", file=sys.stderr)
    for cell in sweep.failed:
        print(f"failed: {cell.model} on {cell.task}: {cell.reason} (log: {cell.log})",
              file=sys.stderr)
    return 1 if sweep.failed else 0


def cmd_rescore(args: argparse.Namespace) -> int:
    from bench.campaign.rescore import rescore

    result = rescore(args.run_dir, args.overrides, out_dir=args.out, device=args.device,
                     leaderboard=not args.no_leaderboard, leaderboard_dir=args.leaderboard_dir)
    show_result(result)
    return 0


def _run_many(args: argparse.Namespace) -> int:
    """Several tasks (a suite or a comma list) with one model: one table, a suite.json."""
    from bench.campaign.suites import load_suite, run_suite, suite_table

    if args.suite and args.task:
        raise BenchError("give either TASK1,TASK2 or --suite NAME, not both")
    if args.predictions:
        raise BenchError("--predictions scores one task", "run each task on its own")
    suite = load_suite(args.suite) if args.suite else None
    tasks = suite.task_list() if suite else [t for t in args.task.split(",") if t]
    run = run_suite(
        tasks, args.model, suite=suite.suite if suite else "tasks", strict=args.strict,
        out_dir=args.out, overrides=args.overrides, device=args.device,
        batch_size=args.batch_size, limit=args.limit, seed=args.seed,
        leaderboard=not args.no_leaderboard, leaderboard_dir=args.leaderboard_dir,
        amp=args.amp, workers=args.workers, arch=args.arch,
        trust_checkpoint=args.trust_checkpoint, name=args.name,
        save_predictions=args.save_predictions, resume=args.resume,
    )
    print(suite_table(run, args.format), end="")
    if run.left_out:
        print(f"left out (not {run.model}'s family): {', '.join(run.left_out)}",
              file=sys.stderr)
    print(f"suite result in {run.path}", file=sys.stderr)
    return 0 if run.complete else 1


def show_result(result) -> None:
    """Print a result's metrics table and where its files went."""
    from rich.table import Table as RichTable

    table = RichTable(title=f"{result.task} / {result.model}  (N={result.n_samples})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result.metrics.items():
        marker = " *" if name == result.primary_metric else ""
        table.add_row(name + marker, f"{value:.4f}")
    console().print(table)
    meta = result.metadata
    console().print(f"{meta['samples_per_s']} samples/s on {meta['device']}; "
                  f"results in {result.out_dir}")


def cmd_list(_: argparse.Namespace) -> int:
    from rich.table import Table as RichTable

    from bench.registry import ADAPTERS, EMBEDDED, METRICS, MODELS
    from bench.spec import load_spec, task_names

    tasks = RichTable(title="tasks")
    for column in ("task", "family", "data", "description"):
        tasks.add_column(column)
    for name in task_names():
        try:
            spec = load_spec(name, check_metrics=False)
        except SpecError as exc:
            tasks.add_row(name, "?", "?", f"[red]invalid spec: {exc.errors[0]}[/red]")
            continue
        data = f"embedded ({spec.dataset.embedded})" if spec.dataset.embedded else "real"
        tasks.add_row(name, spec.family, data, " ".join(spec.description.split())[:90])
    console().print(tasks)
    for title, registry in (("adapters", ADAPTERS), ("metrics", METRICS),
                            ("baselines", MODELS), ("embedded data sets", EMBEDDED)):
        table = RichTable(title=title)
        table.add_column("name")
        if registry is MODELS:
            table.add_column("family")
        table.add_column("description")
        for name, description in registry.describe():
            cells = [name, registry.summary(name).family] if registry is MODELS else [name]
            table.add_row(*cells, description)
        console().print(table)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from bench.spec import load_spec, validate_spec_file

    errors = validate_spec_file(args.spec, args.overrides)
    if errors:
        for error in errors:
            print(error, file=sys.stderr)
        print(f"arbench: {len(errors)} error(s) in {args.spec}", file=sys.stderr)
        return 2
    spec = load_spec(args.spec, args.overrides)
    print(f"{args.spec}: valid ({spec.family} task {spec.task!r}, version {spec.version})")
    if args.no_smoke:
        return 0
    return _smoke(spec)


def _smoke(spec) -> int:
    """One sample through the adapter, a baseline (when any) and the metrics."""
    from bench.runner import dataset_root, evaluate

    root = dataset_root(spec, build=False)
    if not spec.dataset.embedded and not root.exists():
        print(f"smoke run skipped: no data at {root}")
        return 0
    if not spec.baselines:
        print("smoke run skipped: the spec names no baseline")
        return 0
    result = evaluate(spec, spec.baselines[0], limit=1, leaderboard=False, progress=False,
                      out_dir=Path("results") / ".smoke")
    print(f"smoke run ok: 1 sample through {spec.dataset.adapter} and {spec.baselines[0]}: "
          + ", ".join(f"{k}={v:.4g}" for k, v in result.metrics.items()))
    return 0


def _leaderboard_dir(value: str | None) -> Path:
    from bench.tables import LEADERBOARD_DIR

    return Path(value) if value else LEADERBOARD_DIR


def cmd_table(args: argparse.Namespace) -> int:
    from bench.tables import build_table, leaderboard_path, read_leaderboard, render

    path = leaderboard_path(args.source, _leaderboard_dir(args.leaderboard_dir))
    table = build_table(read_leaderboard(path), runs=args.runs, reference=args.reference)
    print(render(table, args.format, with_ci=args.reference is not None), end="")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from bench.runner import evaluate
    from bench.spec import load_spec
    from bench.tables import build_table, read_leaderboard, render

    spec = load_spec(args.task, args.overrides)
    board = _leaderboard_dir(args.leaderboard_dir) / spec.leaderboard_name
    key = None
    names: dict[str, str] = {}  # model reference -> its name on the leaderboard
    if board.is_file():
        frame = read_leaderboard(board)
        key = frame.sort_values("timestamp")["comparability_key"].iloc[-1]
        comparable = frame[frame["comparability_key"] == key]
        names = {ref: name for ref in args.models
                 if (name := _compared_before(ref, comparable)) is not None}
    for model in args.models:
        if model in names:
            continue
        result = evaluate(
            spec, model, device=args.device, batch_size=args.batch_size, limit=args.limit,
            seed=args.seed, out_dir=args.out, leaderboard_dir=args.leaderboard_dir,
            amp=args.amp, workers=args.workers,
        )
        key = result.comparability_key
        names[model] = result.model
    reference = args.reference or args.models[0]
    table = build_table(read_leaderboard(board), reference=names.get(reference, reference),
                        key=key, models=[names[m] for m in args.models])
    print(render(table, args.format, with_ci=True), end="")
    return 0


def _compared_before(ref: str, rows) -> str | None:
    """The leaderboard name of model reference ``ref`` among comparable ``rows``: a row of
    that name, or one whose reference is ``ref`` (a model file must also still have the
    fingerprint it was scored with); None when it has not been scored."""
    from bench.models import file_hash

    if ref in set(rows["model"]):
        return ref
    same_ref = rows[rows["model_ref"] == ref] if "model_ref" in rows else rows.iloc[:0]
    if Path(ref).is_file() and "model_fingerprint" in rows:
        same_ref = same_ref[same_ref["model_fingerprint"] == file_hash(Path(ref))]
    return None if same_ref.empty else str(same_ref.sort_values("timestamp")["model"].iloc[-1])


def cmd_train(args: argparse.Namespace) -> int:
    from bench.registry import MODELS
    from bench.runner import pick_device
    from bench.spec import load_spec

    baseline = MODELS.get(args.baseline)
    task = args.task or baseline.default_task
    if task is None:
        raise BenchError(f"baseline {args.baseline!r} has no default task", "pass --task TASK")
    spec = load_spec(task, args.overrides)
    if baseline.family != spec.family:
        raise BenchError(f"{args.baseline} is a {baseline.family} baseline; {task} is "
                         f"{spec.family}")
    if baseline.train is None:
        raise BenchError(f"baseline {args.baseline!r} has nothing to train")
    path = baseline.train(spec, pick_device(args.device), out=Path(args.out) if args.out else None,
                          epochs=args.epochs, seed=args.seed)
    print(f"weights written to {path}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from bench.adapters.base import data_root, ensure_embedded
    from bench.registry import EMBEDDED

    if args.data_command == "get":
        from bench.adapters.mnist import download_mnist

        root = Path(args.root) if args.root else data_root() / args.name
        files = download_mnist(root)
        print(f"downloaded and verified {len(files)} files into {root}")
        return 0
    for name in args.names or EMBEDDED.names():
        start = time.perf_counter()
        root = ensure_embedded(name)
        print(f"{name}: {root} ({time.perf_counter() - start:.1f}s)")
    return 0


def cmd_perf(args: argparse.Namespace) -> int:
    from rich.table import Table as RichTable

    from bench.registry import PERF_CASES

    for name in args.cases or PERF_CASES.names():
        console().rule(name)
        rows = PERF_CASES.get(name)(device=args.device)
        table = RichTable()
        for column in rows[0]:
            table.add_column(column)
        for row in rows:
            table.add_row(*[str(v) for v in row.values()])
        console().print(table)
    return 0


def cmd_site(args: argparse.Namespace) -> int:
    from bench.site import build_site

    index = build_site(_leaderboard_dir(args.leaderboard_dir), Path(args.out))
    print(f"site written to {index.parent}/ (open {index})")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bench.demo import run_demo

    run_demo(args.tasks, site_dir=Path(args.site))
    return 0


COMMANDS = {
    "run": cmd_run, "rescore": cmd_rescore, "sweep": cmd_sweep, "list": cmd_list,
    "validate": cmd_validate, "table": cmd_table, "compare": cmd_compare, "train": cmd_train,
    "data": cmd_data, "perf": cmd_perf, "site": cmd_site, "demo": cmd_demo,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``arbench`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except BenchError as exc:
        if args.debug:
            raise
        if isinstance(exc, SpecError) and len(exc.errors) > 1:
            for error in exc.errors:
                print(error, file=sys.stderr)
        if isinstance(exc, SpecError):
            message = exc.errors[0] if len(exc.errors) == 1 else exc.message
        else:
            message = str(exc)
        print(f"arbench: error: {message}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        if args.debug:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"arbench: error: {exc.strerror or exc}{where} (hint: check the disk and the "
              "folder's permissions; --debug shows where)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("arbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
