"""Result, result.json, streamed samples.jsonl, and the atomic leaderboard CSV append."""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import platform
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout

from bench.errors import BenchError
from bench.formats.leaderboard import read_leaderboard_rows

REPO_ROOT = Path(__file__).resolve().parents[1]
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
LIBRARIES = ("numpy", "opencv-python", "open3d", "faiss-cpu", "scikit-learn", "scikit-image")


@dataclass
class Result:
    """One evaluation: scalar metrics, details, metadata and where its files went."""

    task: str
    model: str
    run_id: str
    metrics: dict[str, float]
    primary_metric: str
    higher_is_better: dict[str, bool]
    n_samples: int
    comparability_key: str
    metadata: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)
    out_dir: Path | None = None
    figures: list[str] = field(default_factory=list)

    @property
    def primary(self) -> float:
        """The value of the task's primary metric."""
        return self.metrics[self.primary_metric]

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict (paths as strings)."""
        data = asdict(self)
        data["out_dir"] = str(self.out_dir) if self.out_dir else None
        return data

    def leaderboard_row(self) -> dict[str, Any]:
        """The flat leaderboard row: metrics and metadata as columns."""
        meta = self.metadata
        row: dict[str, Any] = {
            "run_id": self.run_id,
            "timestamp": meta["timestamp"],
            "task": self.task,
            "model": self.model,
            "primary_metric": self.primary_metric,
        }
        row.update({name: _format_number(value) for name, value in self.metrics.items()})
        row.update(
            {
                "n_samples": self.n_samples,
                "comparability_key": self.comparability_key,
                "metrics": ";".join(self.metrics),
                "primary_sample_key": self.metadata.get("primary_sample_key") or "",
                "lower_is_better": ";".join(
                    k for k, higher in self.higher_is_better.items() if not higher
                ),
            }
        )
        for key in (
            "spec_hash", "protocol_hash", "dataset_fingerprint", "model_fingerprint",
            "model_ref", "model_kind", "metric_versions", "arbench_version", "torch_version",
            "cuda_version", "libraries", "git_commit", "git_dirty", "device", "wall_s",
            "samples_per_s", "seed", "limit", "amp",
        ):
            value = meta.get(key)
            row[key] = json.dumps(value, sort_keys=True) if isinstance(value, dict) else value
        row["result_dir"] = str(self.out_dir) if self.out_dir else ""
        return row


def _format_number(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    return f"{value:.6g}"


def package_versions() -> dict[str, str]:
    """Versions of arbench's main libraries (those installed)."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


def arbench_version() -> str:
    """The installed arbench version."""
    try:
        return version("arbench")
    except PackageNotFoundError:
        return "0+unknown"


def git_state() -> tuple[str, bool | None]:
    """(commit, dirty) of the arbench checkout, or ('', None) outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
            timeout=10, check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "", None
    return commit, bool(status.strip())


def environment_metadata(device: torch.device) -> dict[str, Any]:
    """Versions, git state and device name for a run's metadata."""
    commit, dirty = git_state()
    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
    else:
        device_name = f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return {
        "arbench_version": arbench_version(),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda or "",
        "libraries": package_versions(),
        "git_commit": commit,
        "git_dirty": dirty,
        "device": device_name,
        "python": platform.python_version(),
    }


def neutralise_cell(value: Any) -> Any:
    """Prefix text a spreadsheet would run as a formula with a quote; numbers pass."""
    if not isinstance(value, str) or not value.startswith(FORMULA_PREFIXES):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value


JSON_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def json_column(values: list[Any]) -> list[str]:
    """Each value as ``json.dumps(value, allow_nan=True)`` writes it, a whole column at a
    time: a column of floats, ints, bools or strings by one conversion over the column,
    anything else (lists, None, mixed types) value by value through ``json.dumps``."""
    kinds = set(map(type, values))
    if kinds == {float}:
        texts = list(map(float.__repr__, values))
        if not all(map(math.isfinite, values)):
            texts = [JSON_NON_FINITE.get(text, text) for text in texts]
        return texts
    if kinds == {int}:
        return list(map(int.__repr__, values))
    if kinds == {bool}:
        return ["true" if value else "false" for value in values]
    if kinds == {str}:
        return list(map(encode_basestring_ascii, values))
    return [json.dumps(value, allow_nan=True) for value in values]


def json_lines(ids: list[Any], values: dict[str, list[Any]]) -> str:
    """The records ``{"id": id, key: value, ...}``, one JSON object a line, byte for byte
    as ``json.dumps(record, allow_nan=True) + "\\n"`` writes each; built column by column.
    Every column must hold one value per id."""
    for key, column in values.items():
        if len(column) != len(ids):
            raise BenchError(f"per-sample values {key!r}: {len(column)} for a batch of "
                             f"{len(ids)} samples")
    keys = [key for key in values if key != "id"]
    columns = [json_column(list(values.get("id", ids)))]
    columns += [json_column(values[key]) for key in keys]
    template = "{" + ", ".join(json.dumps(key).replace("%", "%%") + ": %s"
                               for key in ["id", *keys]) + "}\n"
    return "".join(map(template.__mod__, zip(*columns, strict=True)))


class SampleWriter:
    """Streams per-sample records to ``samples.jsonl``, one write per batch (nothing is
    held in memory beyond a batch)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._handle = open(path, "w", encoding="utf-8") if path else None  # noqa: SIM115

    def write(self, ids: list[str], values: dict[str, list[Any]]) -> None:
        """Write one record per sample id with that sample's value of every key (each
        column a list as long as ``ids``)."""
        if self._handle is None:
            return
        self._handle.write(json_lines(ids, values))

    def close(self) -> None:
        """Flush and close the file."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def add_sample_records(path: Path, records: dict[str, dict[str, Any]]) -> None:
    """Add whole-set records (sample id -> {key: value}, e.g. a query's AP) to the records of
    ``samples.jsonl`` at ``path``, rewritten atomically; every record gets every new key,
    None where its sample has no value (a database image has no AP)."""
    if not records:
        return
    keys = list(dict.fromkeys(key for values in records.values() for key in values))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with open(path, encoding="utf-8") as source, os.fdopen(fd, "w", encoding="utf-8") as out:
            for line in source:
                record = json.loads(line)
                extra = records.get(str(record["id"]), {})
                record.update({key: extra.get(key) for key in keys})
                out.write(json.dumps(record, allow_nan=True) + "\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file in the same directory, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, default=str)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _rewrite_leaderboard(path: Path, change: Any) -> None:
    """Under the leaderboard's lock, read its rows, let ``change(header, rows)`` edit them in
    place (it returns False to leave the file as it is), then write the file atomically
    (temp file + rename). Formula-like text cells are neutralised; a failure leaves the
    previous file untouched."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise PermissionError(f"cannot write {path}")
        lock = FileLock(str(path) + ".lock", timeout=60)
        with lock:
            header, rows = read_leaderboard_rows(path)
            if change(header, rows) is False:
                return
            rows = [{key: neutralise_cell(value) for key, value in row.items()} for row in rows]
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            try:
                with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
                    writer = csv.DictWriter(handle, fieldnames=header, restval="")
                    writer.writeheader()
                    writer.writerows(rows)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
    except (PermissionError, Timeout, OSError) as exc:
        raise BenchError(
            f"cannot append to leaderboard {path}: {exc}",
            "check the directory is writable, or pass --no-leaderboard",
        ) from exc


def append_leaderboard(path: Path, row: dict[str, Any]) -> None:
    """Append ``row`` to the CSV at ``path`` under a lock, atomically (temp file + rename).

    New columns widen the header; earlier rows keep their values. Formula-like text cells
    are neutralised. A failure leaves the previous file untouched.
    """
    def add(header: list[str], rows: list[dict[str, Any]]) -> None:
        header += [key for key in row if key not in header]
        rows.append(row)

    _rewrite_leaderboard(path, add)


# ------------------------------------------------- published leaderboards (`arbench demo`)

SAMPLES_DIRNAME = "samples"
MEASURED_COLUMNS = ("model", "comparability_key", "protocol_hash", "dataset_fingerprint",
                    "model_fingerprint", "n_samples", "primary_sample_key", "metrics")


def compact_samples_path(leaderboard_dir: Path, task: str, run_id: str) -> Path:
    """Where a published run's per-sample records live: ``samples/<task>/<run_id>.csv.gz``
    beside the leaderboard CSVs."""
    return Path(leaderboard_dir) / SAMPLES_DIRNAME / task / f"{run_id}.csv.gz"


def write_compact_samples(samples_jsonl: Path, target: Path) -> Path:
    """A run's ``samples.jsonl`` -> a gzip CSV at ``target``: the ``id`` column, then one
    column per per-sample key whose values are all numbers or booleans (1/0), in the order
    of the first record; lists are left out. Same records give the same bytes (no gzip
    timestamp)."""
    records = [json.loads(line) for line in
               Path(samples_jsonl).read_text(encoding="utf-8").splitlines() if line]
    keys = [key for key in (records[0] if records else {}) if key != "id" and all(
        isinstance(record.get(key), int | float | bool) or record.get(key) is None
        for record in records)]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["id", *keys])
    for record in records:
        writer.writerow([record["id"], *(_sample_cell(record.get(key)) for key in keys)])
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(gzip.compress(text.getvalue().encode("utf-8"), mtime=0))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _sample_cell(value: float | int | bool | None) -> str:
    if value is None:
        return "nan"
    if isinstance(value, bool):
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def publish_leaderboard_row(path: Path, row: dict[str, Any], samples_jsonl: Path) -> str:
    """Publish one run in the committed leaderboard at ``path`` (``arbench demo``): it
    replaces that model's rows of the same protocol instead of adding a duplicate, and its
    per-sample records go to ``samples/<task>/<run_id>.csv.gz`` beside the CSV.

    A row that measures exactly what the run measured (same model, data, protocol, model
    fingerprint and metric values; only times, versions and commit differ) is kept as it
    is, and its records are rewritten from the run (a newer arbench may record more per
    sample); the same records give the same bytes, so rerunning an unchanged demo leaves
    the published files byte for byte the same. Returns the run id of the published row.
    """
    path = Path(path)
    published = {"run_id": str(row["run_id"])}

    def replace(header: list[str], rows: list[dict[str, Any]]) -> bool:
        new = {key: str(neutralise_cell(value)) for key, value in row.items()}
        columns = [*MEASURED_COLUMNS, *new["metrics"].split(";")]
        same_run = [old for old in rows if old.get("model") == new["model"]
                    and old.get("protocol_hash") == new["protocol_hash"]]
        kept = next((old for old in same_run
                     if all(old.get(key, "") == new.get(key, "") for key in columns)), None)
        if kept is not None:
            published["run_id"] = kept["run_id"]
        stale = [old for old in same_run if old is not kept]
        for old in stale:
            rows.remove(old)
            compact_samples_path(path.parent, old["task"], old["run_id"]).unlink(missing_ok=True)
        if kept is not None:
            return bool(stale)
        header += [key for key in row if key not in header]
        rows.append(row)
        return True

    _rewrite_leaderboard(path, replace)
    write_compact_samples(samples_jsonl,
                          compact_samples_path(path.parent, str(row["task"]), published["run_id"]))
    return published["run_id"]
