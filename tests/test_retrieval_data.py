"""revisitop / geo-retrieval adapters on small fixtures in the real layouts, predictions
files, bad input, and the embedded tasks end to end."""

from __future__ import annotations

import csv
import json
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from bench.adapters.geo_retrieval import GeoRetrievalDataset
from bench.adapters.revisitop import RevisitopDataset, load_plain_pickle
from bench.errors import ContractError, DataError
from bench.runner import evaluate
from bench.spec import load_spec

DB = [f"d{i}" for i in range(6)]
QUERIES = ["q0", "q1"]
# q0 at 0 deg; database d0 20, d1 40, d2 0, d3 10, d4 30, d5 50 deg; q1 has no positive
ANGLES = {"q0": 0, "q1": 90, "d0": 20, "d1": 40, "d2": 0, "d3": 10, "d4": 30, "d5": 50}


def _write_image(path: Path, value: int, size: tuple[int, int] = (12, 16)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((*size, 3), value, dtype=np.uint8))


def revisitop_fixture(root: Path) -> Path:
    for i, name in enumerate(QUERIES + DB):
        _write_image(root / "jpg" / f"{name}.jpg", 20 * i, (40, 50))
    gnd = [{"bbx": np.array([5.0, 4.0, 25.4, 30.6]), "easy": [0], "hard": np.array([1]),
            "junk": [2]},
           {"bbx": [0, 0, 50, 40], "easy": [], "hard": [], "junk": []}]
    with open(root / "gnd_tiny.pkl", "wb") as handle:
        pickle.dump({"imlist": DB, "qimlist": QUERIES, "gnd": gnd}, handle, protocol=2)
    return root


def _spec(tmp_path: Path, family: str, adapter: str, root: Path, metrics: list) -> Path:
    spec = {"task": f"tiny-{family}", "version": 1, "family": family,
            "description": "tiny fixture", "dataset": {"adapter": adapter, "root": str(root)},
            "protocol": {"batch_size": 3}, "metrics": metrics,
            "primary_metric": "recall@1"}
    path = tmp_path / f"{family}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _descriptor_file(tmp_path: Path, ids: list[str]) -> Path:
    radians = np.radians([ANGLES[i.split("/")[1]] for i in ids])
    np.save(tmp_path / "desc.npy", np.stack([np.cos(radians), np.sin(radians)], 1) * 3.0)
    (tmp_path / "desc.txt").write_text("\n".join(ids) + "\n")
    return tmp_path / "desc.npy"


def test_revisitop_adapter_reads_layout_and_crops_queries(tmp_path: Path) -> None:
    data = RevisitopDataset(revisitop_fixture(tmp_path / "data"))
    assert len(data) == 8 and data.info.name == "tiny"
    query = data[0]
    # box 5, 4, 25.4, 30.6 rounds as PIL does to 5, 4, 25, 31: 20 x 27 pixels
    assert query["image"].shape == (3, 27, 20)
    assert query["is_query"] and query["easy"] == [0] and query["hard"] == [1]
    db = data[2 + 4]
    assert db["id"] == "db/d4" and db["index"] == 4 and not db["is_query"]
    assert db["image"].shape == (3, 40, 50)


def test_restricted_unpickler_refuses_code(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    path = tmp_path / "gnd_evil.pkl"
    path.write_bytes(pickle.dumps({"imlist": [], "qimlist": [], "gnd": [Evil()]}))
    with pytest.raises(DataError, match=r"not plain data: it asks to load (posix|os)\.system"):
        load_plain_pickle(path)
    assert not (tmp_path / "pwned").exists()
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": np.arange(3), "b": [1.5, "x", (2, 3)], "c": {4}}))
    loaded = load_plain_pickle(plain)
    assert loaded["a"].tolist() == [0, 1, 2] and loaded["c"] == {4}


def test_revisitop_bad_data(tmp_path: Path) -> None:
    root = revisitop_fixture(tmp_path / "data")
    (root / "jpg" / "d3.jpg").unlink()
    with pytest.raises(DataError, match=r"d3\.jpg is named in gnd_tiny\.pkl but missing"):
        RevisitopDataset(root)
    with pytest.raises(DataError, match="missing ground truth"):
        RevisitopDataset(root, name="roxford5k")
    with open(root / "gnd_tiny.pkl", "wb") as handle:
        pickle.dump({"imlist": DB, "qimlist": ["q0"], "gnd": [{"easy": [9]}]}, handle)
    with pytest.raises(DataError, match="names database index 9"):
        RevisitopDataset(root)


def test_revisitop_run_with_descriptor_and_ranking_files(tmp_path: Path, run_dirs) -> None:
    root = revisitop_fixture(tmp_path / "data")
    spec = _spec(tmp_path, "retrieval", "revisitop", root,
                 [{"name": "retrieval", "params": {"ks": [1, 5], "figure_queries": 2}},
                  {"name": "revisitop", "params": {"ks": [1, 5]}}])
    ids = [f"query/{q}" for q in QUERIES] + [f"db/{d}" for d in DB]
    result = evaluate(spec, predictions=str(_descriptor_file(tmp_path, ids)), progress=False,
                      **run_dirs)
    assert result.metrics["recall@1"] == 0.0 and result.metrics["recall@5"] == 1.0
    assert result.metrics["mAP"] == pytest.approx(1 / 3)
    assert result.metrics["mAP_easy"] == pytest.approx(0.25)
    assert result.metrics["mAP_hard"] == pytest.approx(1 / 6)
    assert [Path(f).name for f in result.figures] == ["retrieval_top5.png"]
    records = [json.loads(line) for line in
               (result.out_dir / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records] == ids  # the loop's order, whole-set values added
    assert [r["AP"] for r in records[:2]] == [pytest.approx(1 / 3), None]
    assert [r["AP_hard"] for r in records[:2]] == [pytest.approx(1 / 6), None]
    assert all(r["AP"] is None and r["recall@1"] is None for r in records[2:])
    assert result.metadata["primary_sample_key"] == "recall@1"
    ranking = tmp_path / "ranking.csv"
    with open(ranking, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["query", "ranking"])
        writer.writerow(["q0", "d2 d3 d0 d4 d1 d5"])
        writer.writerow(["q1", "d5"])
    ranked = evaluate(spec, predictions=str(ranking), progress=False, **run_dirs)
    for key in ("recall@1", "recall@5", "mAP", "mAP_easy", "mAP_medium", "mAP_hard"):
        assert ranked.metrics[key] == pytest.approx(result.metrics[key])
    with open(ranking, "a", newline="") as handle:
        handle.write("q0,d2 nowhere\n")
    with pytest.raises(ContractError, match="'nowhere' is not a database image"):
        evaluate(spec, predictions=str(ranking), progress=False, **run_dirs)


def test_descriptor_dimension_mismatch_and_nan(tmp_path: Path, run_dirs) -> None:
    root = revisitop_fixture(tmp_path / "data")
    spec = _spec(tmp_path, "retrieval", "revisitop", root, [{"name": "retrieval"}])
    ids = [f"query/{q}" for q in QUERIES] + [f"db/{d}" for d in DB]
    rows = np.ones((8, 4), dtype=np.float32)
    rows[5, 1] = np.nan
    np.savez(tmp_path / "nan.npz", ids=np.array(ids), descriptors=rows)
    with pytest.raises(ContractError, match="NaN"):
        evaluate(spec, predictions=str(tmp_path / "nan.npz"), progress=False, **run_dirs)
    with pytest.raises(ContractError, match="'db/d1' has dimension 3, but 'query/q0' had 4"):
        evaluate(spec, model="tests.test_retrieval_data:mixed_dimension_predictor",
                 progress=False, **run_dirs)


def mixed_dimension_predictor(batch: dict) -> torch.Tensor:
    """4-d descriptors for the first batch (queries first), 3-d for database-only batches."""
    return torch.ones(len(batch["id"]), 4 if batch["is_query"].any() else 3)


def geo_fixture(root: Path) -> Path:
    rows = [("queries/a.jpg", 2.0, 0.0), ("queries/b.jpg", 100.0, 0.0)]
    rows += [(f"database/{e:02d}.jpg", float(e), 0.0) for e in (0, 10, 20, 30, 40)]
    for i, (image, _, _) in enumerate(rows):
        _write_image(root / image, 30 * i)
    with open(root / "positions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "east", "north", "note"])
        writer.writerows((image, e, n, "x") for image, e, n in rows)
    return root


def test_geo_adapter_and_localization_run(tmp_path: Path, run_dirs) -> None:
    root = geo_fixture(tmp_path / "geo")
    data = GeoRetrievalDataset(root)
    assert len(data) == 7 and data[1]["position"].tolist() == [100.0, 0.0]
    assert data[6]["id"] == "db/40.jpg" and data[6]["index"] == 4
    spec = _spec(tmp_path, "localization", "geo-retrieval", root,
                 [{"name": "localization", "params": {"ks": [1, 5], "figure_queries": 2}}])
    angles = {"a.jpg": 0, "b.jpg": 90, "00.jpg": 80, "10.jpg": 60, "20.jpg": 10, "30.jpg": 45,
              "40.jpg": 5}
    ids = [data[i]["id"] for i in range(len(data))]
    radians = np.radians([angles[i.split("/")[1]] for i in ids])
    np.savez(tmp_path / "geo.npz", ids=np.array(ids),
             descriptors=np.stack([np.cos(radians), np.sin(radians)], 1))
    result = evaluate(spec, predictions=str(tmp_path / "geo.npz"), progress=False, **run_dirs)
    assert result.metrics["recall@1"] == 0.0 and result.metrics["recall@5"] == 1.0
    assert result.metrics["median_error_m"] == pytest.approx(69.0)
    assert [Path(f).name for f in result.figures] == ["localization_top5.png"]


def test_geo_bad_data(tmp_path: Path) -> None:
    root = geo_fixture(tmp_path / "geo")
    (root / "database" / "20.jpg").unlink()
    with pytest.raises(DataError, match=r"20\.jpg is listed in positions\.csv but missing"):
        GeoRetrievalDataset(root)
    (root / "positions.csv").write_text("image,east,north\nqueries/a.jpg,1,abc\n")
    with pytest.raises(DataError, match=r"positions\.csv:2: east/north must be numbers"):
        GeoRetrievalDataset(root)
    with pytest.raises(DataError, match="does not exist"):
        GeoRetrievalDataset(tmp_path / "nowhere")


@pytest.mark.parametrize("task", ["synthetic-retrieval", "synthetic-places"])
def test_embedded_tasks_end_to_end(task: str, run_dirs) -> None:
    result = evaluate(task, "baseline:color-hist", progress=False, **run_dirs)
    spec = load_spec(task)
    assert 0.0 <= result.primary <= 1.0
    assert result.n_samples == (224 if task == "synthetic-retrieval" else 85)
    assert spec.primary_metric in result.metrics


def test_limit_without_database_gives_nan_not_a_crash(run_dirs) -> None:
    result = evaluate("synthetic-retrieval", "baseline:color-hist", limit=5, progress=False,
                      **run_dirs)
    assert result.n_samples == 5
    assert all(np.isnan(v) for v in result.metrics.values())
