"""Every shipped metric gives the same numbers scored whole or in two merged halves.

For each task with an embedded data set, its first baseline predicts a spread subset of
the samples once; the (prediction, batch) pairs are fed to one fresh metric set and, split
in two halves, to two more sets joined with ``Metric.merge``. ``compute()``, ``details()``
and the whole-set per-sample records must agree: bit for bit where no state is a
floating-point sum (concatenated states come back in the same order), to 1e-12 otherwise
(sums added in another order).
The same under two torch.distributed ranks is in tests/test_distributed.py.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np
import pytest
import torch

from bench.metrics.base import Metric
from bench.models import load_model
from bench.registry import FAMILIES
from bench.runner import build_dataset, build_metrics, shard
from bench.spec import load_spec, task_names

EMBEDDED_TASKS = [name for name in task_names() if load_spec(name).dataset.embedded]
SUBSET = 12
MAX_BATCH = 4


@cache
def scored_batches(task: str) -> tuple[tuple[Any, dict[str, Any]], ...]:
    """(checked prediction, batch) pairs of the task's first baseline over ``SUBSET`` samples
    spread over the set (so retrieval subsets hold queries and database images alike)."""
    spec = load_spec(task)
    family = FAMILIES.get(spec.family)()
    dataset = build_dataset(spec)
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(SUBSET, len(dataset))).round())
    predictor, _ = load_model(spec.baselines[0], family, spec, dataset, torch.device("cpu"))
    samples = [dataset[int(i)] for i in picks]
    size = min(int(spec.protocol.get("batch_size", MAX_BATCH)), MAX_BATCH)
    pairs = []
    with torch.inference_mode():
        for start in range(0, len(samples), size):
            batch = family.collate(samples[start:start + size])
            pairs.append((family.check_prediction(predictor(batch), batch, dataset.info), batch))
    return tuple(pairs)


def scored(task: str, pairs: tuple[tuple[Any, dict[str, Any]], ...]) -> list[Metric]:
    """A fresh metric set of the task fed ``pairs`` in order."""
    metrics = build_metrics(load_spec(task))
    with torch.inference_mode():
        for pred, batch in pairs:
            for metric in metrics:
                metric.update(pred, batch)
    return metrics


def exact(metric: Metric) -> bool:
    """True when merging cannot round: no state is a floating-point sum."""
    return not any(reduce == "sum" and metric.state(name).is_floating_point()
                   for name, reduce in metric._reduce.items())


def assert_same(whole: Any, merged: Any, tolerance: float, where: str = "") -> None:
    """``merged`` equals ``whole`` (NaN equals NaN; floats within ``tolerance`` relative)."""
    assert type(whole) is type(merged), f"{where}: {type(whole)} vs {type(merged)}"
    if isinstance(whole, dict):
        assert whole.keys() == merged.keys(), where
        for key in whole:
            assert_same(whole[key], merged[key], tolerance, f"{where}/{key}")
    elif isinstance(whole, list | tuple):
        assert len(whole) == len(merged), where
        for index, (a, b) in enumerate(zip(whole, merged, strict=True)):
            assert_same(a, b, tolerance, f"{where}[{index}]")
    elif isinstance(whole, float):
        if math.isnan(whole):
            assert math.isnan(merged), f"{where}: {whole} vs {merged}"
        elif tolerance == 0:
            assert whole == merged, f"{where}: {whole!r} vs {merged!r}"
        else:
            assert merged == pytest.approx(whole, rel=tolerance, abs=tolerance), where
    elif isinstance(whole, torch.Tensor):
        assert whole.shape == merged.shape and whole.dtype == merged.dtype, where
        if tolerance == 0 or not whole.is_floating_point():
            assert torch.equal(whole, merged), where
        else:
            torch.testing.assert_close(merged, whole, rtol=tolerance, atol=tolerance,
                                       equal_nan=True, msg=where)
    elif isinstance(whole, np.ndarray):
        assert np.array_equal(whole, merged, equal_nan=whole.dtype.kind == "f"), where
    elif hasattr(whole, "__dict__"):
        assert_same(vars(whole), vars(merged), tolerance, f"{where}.vars")
    else:
        assert whole == merged, f"{where}: {whole!r} vs {merged!r}"


@pytest.mark.parametrize("task", EMBEDDED_TASKS)
def test_two_merged_halves_equal_one_whole_run(task: str) -> None:
    pairs = scored_batches(task)
    half = len(pairs) // 2
    assert half >= 1, f"{task}: need at least two batches to split"
    whole = scored(task, pairs)
    merged = [first.merge(second) for first, second
              in zip(scored(task, pairs[:half]), scored(task, pairs[half:]), strict=True)]
    for before, after in zip(whole, merged, strict=True):
        tolerance = 0.0 if exact(before) else 1e-12
        name = type(before).__name__
        assert_same(before.compute(), after.compute(), tolerance, f"{task}/{name}/compute")
        assert_same(before.details(), after.details(), tolerance, f"{task}/{name}/details")
        assert_same(before.set_records(), after.set_records(), tolerance,
                    f"{task}/{name}/set_records")
        for state in before._reduce:  # what figures() draws from
            assert_same(before.state(state), after.state(state), tolerance,
                        f"{task}/{name}/state {state}")
    assert any(metric.compute() for metric in whole), f"{task}: no metric outputs"


def test_merge_sums_concatenates_and_keeps_first_items() -> None:
    class Toy(Metric):
        def __init__(self) -> None:
            super().__init__()
            self.add_state("count", torch.zeros((), dtype=torch.int64), "sum")
            self.add_state("values", torch.zeros(0), "cat")
            self.add_object_state("names", "union")
            self.add_object_state("kept", "extend", limit=3)

    first, second = Toy(), Toy()
    first.accumulate("count", torch.tensor(2))
    first.accumulate("values", torch.tensor([1.0, 2.0]))
    first.accumulate("names", {0: "bear"})
    for item in ("a", "b"):
        first.accumulate("kept", item)
    second.accumulate("count", torch.tensor(1))
    second.accumulate("values", torch.tensor([3.0]))
    second.accumulate("names", {1: "camel"})
    for item in ("c", "d"):
        second.accumulate("kept", item)
    first.merge(second)
    assert int(first.state("count")) == 3
    assert first.state("values").tolist() == [1.0, 2.0, 3.0]
    assert first.state("names") == {0: "bear", 1: "camel"}
    assert first.state("kept") == ["a", "b", "c"]
    assert not first.has_room("kept")
    assert second.state("values").tolist() == [3.0]


def test_merge_refuses_another_metric() -> None:
    from bench.metrics.segmentation import DavisJF

    with pytest.raises(ValueError, match="cannot merge"):
        DavisJF().merge(Metric())


@pytest.mark.parametrize(("n", "world"), [(7, 2), (8, 2), (5, 3), (1, 2)])
def test_shards_are_consecutive_and_cover_every_sample_once(n: int, world: int) -> None:
    indices = list(range(10, 10 + n))
    parts = [shard(indices, rank, world) for rank in range(world)]
    assert [i for part in parts for i in part] == indices
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
