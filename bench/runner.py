"""evaluate(): the one evaluation loop every task, model and CLI command goes through."""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import secrets
import shutil
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bench.adapters.base import BenchDataset, embedded_root, ensure_embedded, resolve_root
from bench.errors import BenchError, DataError, ModelError
from bench.families.base import Family, move_batch
from bench.families.saving import open_saved_run
from bench.formats.leaderboard import read_leaderboard_rows
from bench.metrics.base import Metric, shared_per_batch
from bench.models import ModelInfo, load_model
from bench.registry import ADAPTERS, FAMILIES, METRICS
from bench.results import (
    REPO_ROOT,
    Result,
    SampleWriter,
    add_sample_records,
    append_leaderboard,
    environment_metadata,
    write_json_atomic,
)
from bench.spec import TaskSpec, _short_hash, load_spec

LEADERBOARD_DIR = REPO_ROOT / "leaderboards"


def pick_device(requested: str | None = None) -> torch.device:
    """``cuda`` when available (or the requested device), else ``cpu``."""
    if requested:
        try:
            device = torch.device(requested)
        except RuntimeError as exc:
            raise BenchError(f"unknown device {requested!r}",
                             "use cpu, cuda or cuda:N") from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise BenchError(f"device {requested!r} requested but CUDA is not available",
                             "use --device cpu")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def dataset_root(spec: TaskSpec, build: bool = True) -> Path:
    """Where the spec's data lives: an embedded set's own folder under the data root (built
    there first when ``build`` and it is missing), else ``dataset.root`` (default: the task
    name) under the data root. A real data root is only ever read."""
    if spec.dataset.embedded:
        if build:
            return ensure_embedded(spec.dataset.embedded)
        return embedded_root(spec.dataset.embedded)
    return resolve_root(spec.dataset.root, spec.task)


def build_dataset(spec: TaskSpec, split: str | None = None) -> BenchDataset:
    """The spec's adapter over its data root (building the embedded set when missing)."""
    root = dataset_root(spec)
    adapter = ADAPTERS.get(spec.dataset.adapter)
    try:
        dataset = adapter(root, split or spec.dataset.split, **spec.dataset.params)
    except TypeError as exc:
        raise BenchError(f"adapter {spec.dataset.adapter!r}: bad dataset.params: {exc}") from exc
    if len(dataset) == 0:
        raise DataError(f"data set at {root} (split {split or spec.dataset.split!r}) is empty")
    return dataset


def checked_run_options(spec: TaskSpec, batch_size: int | None, limit: int | None,
                        workers: int, seed: int) -> int:
    """Refuse run options that would be silently replaced or crash later; return the batch
    size (``batch_size``, else the spec's ``protocol.batch_size``, else 64)."""
    chosen = spec.protocol.get("batch_size", 64) if batch_size is None else batch_size
    where = "--batch-size" if batch_size is not None else "protocol.batch_size"
    if isinstance(chosen, bool) or not isinstance(chosen, int) or chosen < 1:
        raise BenchError(f"{where} must be a whole number of at least 1, got {chosen!r}")
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise BenchError(f"--limit must be at least 1, got {limit}")
    if workers < 0:
        raise BenchError(f"--workers must be 0 or more, got {workers}")
    if not 0 <= seed < 2**32:
        raise BenchError(f"--seed must be in [0, 2**32), got {seed}")
    return chosen


def build_metrics(spec: TaskSpec, device: torch.device | str = "cpu") -> list[Metric]:
    """Fresh instances of the spec's metrics, with their parameters, states on ``device``."""
    return [METRICS.get(m.name)(**m.params).to(device) for m in spec.metrics]


def shard(indices: list[int], rank: int, world: int) -> list[int]:
    """Rank ``rank``'s consecutive share of ``indices`` (sizes differ by at most one), so
    states gathered in rank order follow the samples' order, as in a single process."""
    size, extra = divmod(len(indices), world)
    start = rank * size + min(rank, extra)
    return indices[start:start + size + (rank < extra)]


def _distributed() -> tuple[int, int]:
    """(rank, world size); initialises torch.distributed when launched by torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "model"


def _new_run_id(rank: int, world: int) -> str:
    run_id = dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
    if world > 1:
        holder = [run_id]
        dist.broadcast_object_list(holder, src=0)
        run_id = holder[0]
    return run_id


def _check_leaderboard(path: Path) -> None:
    """Before any work: the leaderboard can be written and its rows are ones the appender
    reads back exactly (so nothing is computed that cannot be recorded)."""
    target = path if path.exists() else path.parent
    while not target.exists():
        target = target.parent
    if not os.access(target, os.W_OK):
        raise BenchError(f"leaderboard {path} is not writable",
                         "fix its permissions, or pass --no-leaderboard")
    read_leaderboard_rows(path)


def evaluate(
    task: str | Path | TaskSpec,
    model: str | None = None,
    *,
    overrides: list[str] | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    out_dir: str | Path = "results",
    leaderboard: bool = True,
    leaderboard_dir: str | Path | None = None,
    amp: bool = False,
    workers: int = 0,
    arch: str | None = None,
    predictions: str | None = None,
    trust_checkpoint: bool = False,
    name: str | None = None,
    progress: bool = True,
    save_predictions: bool = False,
    resume: bool | str | Path = False,
) -> Result:
    """Evaluate ``model`` on ``task`` exactly as the task's spec says; return the Result.

    Writes ``OUT/<task>/<model>/<run-id>/result.json``, ``samples.jsonl`` and figures, and
    appends one row to ``leaderboards/<task>.csv`` unless ``leaderboard`` is False.
    ``save_predictions`` also writes the model's predictions batch by batch into the run
    folder's ``predictions/``, in the family's ``--predictions`` format; ``resume`` (True:
    the newest unfinished run of this task and model under ``out_dir``; or a run folder)
    continues such a run: committed batches are read back instead of predicted again.
    """
    spec = task if isinstance(task, TaskSpec) else load_spec(task, overrides)
    batch_size = checked_run_options(spec, batch_size, limit, workers, seed)
    family: Family = FAMILIES.get(spec.family)()
    rank, world = _distributed()
    torch_device = pick_device(device)
    if world > 1 and torch_device.type == "cuda":
        torch_device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    seed_everything(seed)
    board = Path(leaderboard_dir or LEADERBOARD_DIR) / spec.leaderboard_name
    if leaderboard and rank == 0:
        _check_leaderboard(board)

    dataset = build_dataset(spec)
    indices = list(range(len(dataset)))
    if limit is not None:
        indices = indices[:limit]
    n_total = len(indices)
    local = torch.utils.data.Subset(dataset, shard(indices, rank, world))
    family.check_sample(dataset[indices[0]])

    predictor, model_info = load_model(
        model, family, spec, dataset, torch_device, arch=arch, predictions=predictions,
        trust_checkpoint=trust_checkpoint, name=name,
    )
    metrics = build_metrics(spec, torch_device)

    saver = None
    if save_predictions or resume:
        if world > 1:
            raise BenchError("--save-predictions and --resume run in a single process",
                             "drop them under torchrun")
        options = {"batch_size": batch_size, "limit": limit, "seed": seed}
        run_dir, saver = open_saved_run(
            spec, family, dataset, model_info, options, resume,
            new_run=Path(out_dir) / spec.task / _safe_name(model_info.name) / _new_run_id(0, 1))
        predictor = saver.wrap(predictor)
        run_id = run_dir.name
    else:
        run_id = _new_run_id(rank, world)
        run_dir = Path(out_dir) / spec.task / _safe_name(model_info.name) / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cannot create the result folder {run_dir}: {exc.strerror or exc}",
                         "pass --out DIR on a writable disk, or a shorter --name") from exc
    samples_path = run_dir / (f"samples.rank{rank}.jsonl" if world > 1 else "samples.jsonl")

    loader = torch.utils.data.DataLoader(
        local,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=family.collate,
        pin_memory=torch_device.type == "cuda",
    )
    autocast = (
        torch.autocast(torch_device.type) if amp else nullcontext()
    )
    writer = SampleWriter(samples_path)
    start = time.perf_counter()
    try:
        with _ProgressBar(progress and rank == 0, f"{spec.task} / {model_info.name}",
                       len(loader)) as advance, torch.inference_mode():
            for number, batch in enumerate(loader, start=1):
                batch = move_batch(batch, torch_device, non_blocking=True)
                try:
                    with autocast:
                        raw = predictor(batch)
                except BenchError:
                    raise
                except Exception as exc:
                    raise ModelError(
                        f"model {model_info.name!r} failed on task {spec.task!r}, batch {number} "
                        f"(first sample {batch['id'][0]!r}): {type(exc).__name__}: {exc}"
                    ) from exc
                pred = family.check_prediction(raw, batch, dataset.info)
                if saver is not None:
                    saver.write(batch, raw, pred)
                per_sample: dict[str, list[Any]] = {}
                with shared_per_batch():
                    for metric in metrics:
                        for key, values in metric.update(pred, batch).items():
                            per_sample[key] = values.tolist()
                writer.write(list(batch["id"]), per_sample)
                advance()
    except BaseException:
        writer.close()
        if saver is None:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    writer.close()
    if torch_device.type == "cuda":
        torch.cuda.synchronize(torch_device)
    wall = time.perf_counter() - start

    for metric in metrics:
        metric.sync()
    values: dict[str, float] = {}
    higher: dict[str, bool] = {}
    sample_keys: dict[str, str] = {}
    details: dict[str, Any] = {}
    for metric in metrics:
        values.update(metric.compute())
        higher.update(metric.higher_is_better)
        sample_keys.update(metric.per_sample_key)
        details.update(metric.details())
    result = _make_result(spec, model_info, dataset, metrics, values, higher, details, run_id,
                          run_dir, n_total, wall, torch_device, seed, limit, sample_keys)
    result.metadata["amp"] = amp
    if world > 1:
        dist.barrier()
    if rank == 0:
        if world > 1:
            _merge_rank_samples(run_dir, world)
        figure_dir = run_dir / "figures"
        try:
            whole_set: dict[str, dict[str, Any]] = {}
            for metric in metrics:
                for sample_id, values in metric.set_records().items():
                    whole_set.setdefault(sample_id, {}).update(values)
            add_sample_records(run_dir / "samples.jsonl", whole_set)
            for metric in metrics:
                result.figures += [str(p) for p in metric.figures(figure_dir)]
            write_json_atomic(run_dir / "result.json", result.to_json())
            if leaderboard:
                append_leaderboard(board, result.leaderboard_row())
        except BaseException:
            if saver is None:  # saved predictions stay, to be resumed or re-scored
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
    return result


def comparability_key(spec: TaskSpec, dataset: BenchDataset, metrics: list[Metric],
                      n_samples: int) -> str:
    """The leaderboard's comparability key: protocol, data, metric versions, sample count."""
    return _short_hash({
        "protocol": spec.protocol_hash(),
        "dataset": dataset.info.fingerprint,
        "metric_versions": {type(m).__name__: m.version for m in metrics},
        "n_samples": n_samples,
    })


def _make_result(
    spec: TaskSpec, model_info: ModelInfo, dataset: BenchDataset, metrics: list[Metric],
    values: dict[str, float], higher: dict[str, bool], details: dict[str, Any], run_id: str,
    run_dir: Path, n_samples: int, wall: float, device: torch.device, seed: int,
    limit: int | None, sample_keys: dict[str, str],
) -> Result:
    metric_versions = {type(m).__name__: m.version for m in metrics}
    key = comparability_key(spec, dataset, metrics, n_samples)
    metadata = {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "spec_hash": spec.spec_hash(),
        "protocol_hash": spec.protocol_hash(),
        "dataset_fingerprint": dataset.info.fingerprint,
        "dataset_root": str(dataset.info.root),
        "split": dataset.info.split,
        "model_ref": model_info.ref,
        "model_kind": model_info.kind,
        "model_fingerprint": model_info.fingerprint,
        "metric_versions": metric_versions,
        "wall_s": round(wall, 4),
        "samples_per_s": round(n_samples / wall, 2) if wall > 0 else None,
        "seed": seed,
        "limit": limit,
        "primary_sample_key": sample_keys.get(spec.primary_metric),
        **environment_metadata(device),
    }
    return Result(
        task=spec.task, model=model_info.name, run_id=run_id, metrics=values,
        primary_metric=spec.primary_metric, higher_is_better=higher, n_samples=n_samples,
        comparability_key=key, metadata=metadata, details=details, out_dir=run_dir,
    )


def _merge_rank_samples(run_dir: Path, world: int) -> None:
    with open(run_dir / "samples.jsonl", "w", encoding="utf-8") as merged:
        for rank in range(world):
            part = run_dir / f"samples.rank{rank}.jsonl"
            merged.write(part.read_text(encoding="utf-8"))
            part.unlink()


class _ProgressBar:
    """A rich progress bar (or nothing) yielding an ``advance()`` callable."""

    def __init__(self, enabled: bool, title: str, total: int) -> None:
        self.enabled = enabled
        self.title = title
        self.total = total
        self.bar: Progress | None = None

    def __enter__(self):
        if not self.enabled:
            return lambda: None
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), transient=True,
                            console=Console(stderr=True))
        self.bar.start()
        task_id = self.bar.add_task(self.title, total=self.total)
        return lambda: self.bar.advance(task_id)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
