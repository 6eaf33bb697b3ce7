"""Saving a run's predictions batch by batch, in the family's own ``--predictions`` format.

A run folder's ``predictions/`` holds the family's predictions file or folder (what
``arbench run --predictions`` and ``arbench rescore`` read), ``manifest.json`` (the task spec,
fingerprints and run options the predictions belong to) and ``committed.jsonl``: one line
per batch whose predictions are fully written, appended (and synced) only after the batch's
files are. A run killed at any moment therefore resumes from its last committed batch:
whatever a half-written batch left behind is cut back (``PredictionWriter.restore``) or
overwritten.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from bench.errors import BenchError
from bench.families.base import Batch, Predictor

MANIFEST = "manifest.json"
COMMITTED = "committed.jsonl"


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class PredictionWriter:
    """Writes predictions batch by batch into ``folder`` in a family's predictions format.

    ``target`` is the file or folder ``--predictions`` reads. ``write`` must leave every
    earlier batch readable; ``state()`` (JSON-able) is recorded with each committed batch,
    and ``restore(state)`` cuts the files back to it before a resumed run writes again.
    """

    target_name = "predictions"

    def __init__(self, folder: Path, dataset: Any) -> None:
        self.folder = folder
        self.dataset = dataset
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def target(self) -> Path:
        """The predictions file or folder, as ``--predictions`` takes it."""
        return self.folder / self.target_name

    def write(self, batch: Batch, raw: Any, pred: Any) -> None:
        """Write one batch: ``raw`` is what the model returned, ``pred`` its checked form."""
        raise NotImplementedError

    def state(self) -> Any:
        """What ``restore`` needs to cut the files back to this point (None: nothing)."""
        return None

    def restore(self, state: Any) -> None:
        """Drop whatever was written after ``state`` was taken."""


class AppendedLines(PredictionWriter):
    """A text file (CSV, BOP results) that grows by whole lines, one call per batch;
    ``state`` is its size, so a resumed run truncates a half-written batch away."""

    def header(self, pred: Any) -> str:
        """The file's first line (written with the first batch)."""
        raise NotImplementedError

    def lines(self, batch: Batch, raw: Any, pred: Any) -> list[str]:
        """The batch's lines, without newlines."""
        raise NotImplementedError

    def write(self, batch: Batch, raw: Any, pred: Any) -> None:
        new = not self.target.exists()
        text = "".join(f"{line}\n" for line in ([self.header(pred)] if new else [])
                       + self.lines(batch, raw, pred))
        with open(self.target, "a", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    def state(self) -> int:
        return self.target.stat().st_size if self.target.exists() else 0

    def restore(self, state: Any) -> None:
        if self.target.exists():
            with open(self.target, "r+b") as handle:
                handle.truncate(int(state or 0))


def committed_lines(folder: Path) -> list[str]:
    """The whole lines of ``committed.jsonl``, up to a last line a kill cut short."""
    path = folder / COMMITTED
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True) if path.is_file() else []
    for count, line in enumerate(lines):
        try:
            json.loads(line)
        except json.JSONDecodeError:
            return lines[:count]
        if not line.endswith("\n"):
            return lines[:count]
    return lines


def read_committed(folder: Path) -> tuple[list[str], Any]:
    """(sample ids of every committed batch, the writer state of the last one)."""
    entries = [json.loads(line) for line in committed_lines(folder)]
    ids = [sample_id for entry in entries for sample_id in entry["ids"]]
    return ids, entries[-1].get("state") if entries else None


class SavedPredictions:
    """A run's ``predictions/`` folder: the family's writer, the commit log, and (when
    resuming) the predictions already committed, served instead of calling the model."""

    def __init__(self, writer: PredictionWriter, family: Any, resume: bool) -> None:
        self.writer = writer
        self.family = family
        self.done: set[str] = set()
        committed = writer.folder / COMMITTED
        if resume:
            ids, state = read_committed(writer.folder)
            self.done = set(ids)
            writer.restore(state)
            # the log ends at a whole line again before new batches are appended
            whole = "".join(committed_lines(writer.folder))
            write_bytes_atomic(committed, whole.encode("utf-8"))
        elif committed.exists():
            raise BenchError(f"{writer.folder} already holds committed predictions",
                             "resume that run with --resume, or write into a new run folder")
        self.saved: Predictor | None = None

    def wrap(self, predictor: Predictor) -> Predictor:
        """``predictor`` for batches still to do; committed batches come from the files."""
        if not self.done:
            return predictor

        def predict(batch: Batch) -> Any:
            ids = [str(i) for i in batch["id"]]
            done = sum(i in self.done for i in ids)
            if done == 0:
                return predictor(batch)
            if done != len(ids):
                raise BenchError(f"batch of {ids[0]!r} is only partly committed",
                                 "resume with the batch size of the interrupted run")
            if self.saved is None:
                self.saved = self.family.load_predictions(self.writer.target,
                                                          self.writer.dataset)
            return self.saved(batch)

        return predict

    def write(self, batch: Batch, raw: Any, pred: Any) -> None:
        """Write and commit one batch (a batch served from the files is already there)."""
        ids = [str(i) for i in batch["id"]]
        if ids and ids[0] in self.done:
            return
        self.writer.write(batch, raw, pred)
        entry = json.dumps({"ids": ids, "state": self.writer.state()})
        with open(self.writer.folder / COMMITTED, "a", encoding="utf-8") as handle:
            handle.write(entry + "\n")
            handle.flush()
            os.fsync(handle.fileno())



def open_saved_run(spec: Any, family: Any, dataset: Any, model_info: Any,
                   options: dict[str, Any], resume: bool | str | Path, new_run: Path
                   ) -> tuple[Path, SavedPredictions]:
    """The run folder and its ``predictions/`` for a run that saves predictions: ``new_run``,
    or the unfinished run to resume (``resume``: a run folder, or True for the newest
    unfinished run beside ``new_run``), refused with the reason when it does not match
    (other spec, weights, data or run options)."""
    manifest = {
        "task": spec.task, "family": spec.family, "spec_hash": spec.spec_hash(),
        "model_name": model_info.name, "model_ref": model_info.ref,
        "model_fingerprint": model_info.fingerprint,
        "dataset_fingerprint": dataset.info.fingerprint, **options,
    }
    run_dir = None
    if resume is not False and resume is not None:
        run_dir = unfinished_run(new_run.parent) if resume is True else Path(resume)
    if run_dir is None:
        folder = new_run / "predictions"
        writer = family.prediction_writer(folder, dataset)
        manifest["target"] = writer.target_name
        write_bytes_atomic(folder / MANIFEST, json.dumps(manifest, indent=1).encode("utf-8"))
        write_bytes_atomic(folder / "spec.yaml", yaml.safe_dump(
            spec.model_dump(), sort_keys=False).encode("utf-8"))
        return new_run, SavedPredictions(writer, family, resume=False)
    folder = run_dir / "predictions"
    if not (folder / MANIFEST).is_file():
        raise BenchError(f"{run_dir} is not a run that saved its predictions (no "
                         f"predictions/{MANIFEST})", "give the folder of a --save-predictions run")
    if (run_dir / "result.json").exists():
        raise BenchError(f"run {run_dir} is finished; nothing to resume")
    saved = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    for key, value in manifest.items():
        if key != "model_ref" and saved.get(key) != value:
            raise BenchError(f"cannot resume {run_dir}: its {key} is {saved.get(key)!r}, this "
                             f"run's is {value!r}", "run without --resume to start afresh")
    writer = family.prediction_writer(folder, dataset)
    return run_dir, SavedPredictions(writer, family, resume=True)


def unfinished_run(models_dir: Path) -> Path | None:
    """The newest run folder under ``models_dir`` that saved predictions and has no
    ``result.json`` yet (run ids start with their date and time), or None."""
    runs = [path.parent.parent for path in models_dir.glob(f"*/predictions/{MANIFEST}")
            if not (path.parent.parent / "result.json").exists()]
    return max(runs, key=lambda path: path.name) if runs else None
