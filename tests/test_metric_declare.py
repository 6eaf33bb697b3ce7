"""Metric parameters and outputs declared without torch (issue 14: `arbench validate`).

Each built-in metric's ``declare`` takes its constructor's parameters, raises the errors
the constructor raises, names the outputs the constructor's ``higher_is_better`` names, and
needs no torch; ``bench.lazy`` defers the heavy imports of the metric modules.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.errors import BenchError
from bench.lazy import lazy_import
from bench.metrics.base import Metric
from bench.perf.startup import PACKAGE_PARENT
from bench.registry import METRICS
from bench.spec import declared_outputs, load_spec, task_names

HEAVY = ("torch", "faiss", "cv2", "scipy", "open3d", "sklearn", "skimage", "pandas",
         "matplotlib")


def shipped_metrics() -> list[tuple[str, int, str, dict]]:
    """(task, index, metric name, params) of every metric of every shipped task spec."""
    return [(task, index, m.name, m.params) for task in task_names()
            for index, m in enumerate(load_spec(task, check_metrics=False).metrics)]


@pytest.mark.parametrize("name", METRICS.names())
def test_each_builtin_metric_declares_with_its_constructors_parameters(name: str) -> None:
    cls = METRICS.get(name)
    assert cls.declare.__func__ is not Metric.declare.__func__, f"{name} has no declare()"
    assert (list(inspect.signature(cls.declare).parameters.values())
            == list(inspect.signature(cls).parameters.values()))


@pytest.mark.parametrize(("task", "index", "name", "params"), shipped_metrics())
def test_declared_outputs_are_the_built_metrics_outputs(task: str, index: int, name: str,
                                                        params: dict) -> None:
    cls = METRICS.get(name)
    declared = declared_outputs(cls, params)
    built = cls(**params).higher_is_better
    assert list(declared.items()) == list(built.items())


BAD_VALUES = [
    ("topk_accuracy", {"k": 0}),
    ("mean_class_accuracy", {"num_classes": 1}),
    ("confusion_matrix", {"num_classes": 3, "class_names": ["a"]}),
    ("ece", {"bins": 0}),
    ("depth", {"alignment": "mean"}),
    ("depth", {"min_depth": 5, "max_depth": 1}),
    ("keypoint_3d", {"alignment": "wrist"}),
    ("keypoint_3d", {"extra_auc_mm": [[20, 10]]}),
    ("keypoint_2d", {"steps": 1}),
    ("lsun_layout", {"correspondence": "greedy"}),
    ("localization", {"ks": []}),
    ("localization", {"metric": "cosine"}),
    ("retrieval", {"recall": "some"}),
    ("revisitop", {"ap": "interpolated"}),
    ("revisitop", {"index": "lsh"}),
    ("matching", {"matcher": "nn"}),
    ("matching", {"mma_thresholds": [0, 1]}),
    ("overall_accuracy", {"num_classes": 3, "class_names": ["a"]}),
    ("shape_confusion", {"num_classes": 1}),
    ("add", {"threshold": 0.9}),
    ("pose_auc", {"convention": "linear"}),
    ("proj2d", {"threshold_px": 0}),
    ("bop", {"mspd_thresholds": [5, -1]}),
]


@pytest.mark.parametrize(("name", "params"), BAD_VALUES)
def test_bad_values_raise_what_the_constructor_raises(name: str, params: dict) -> None:
    cls = METRICS.get(name)
    with pytest.raises(ValueError) as built:
        cls(**params)
    with pytest.raises(ValueError) as declared:
        declared_outputs(cls, params)
    assert str(declared.value) == str(built.value)


def test_an_unknown_parameter_is_named_as_the_constructor_names_it() -> None:
    cls = METRICS.get("topk_accuracy")
    with pytest.raises(TypeError) as built:
        cls(kk=2)
    with pytest.raises(TypeError) as declared:
        declared_outputs(cls, {"kk": 2})
    assert str(declared.value) == str(built.value) == (
        "TopKAccuracy.__init__() got an unexpected keyword argument 'kk'")


def test_a_missing_or_passed_on_parameter_is_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match="num_classes"):
        declared_outputs(METRICS.get("shape_confusion"), {})
    with pytest.raises(TypeError, match="'nprobes'"):
        declared_outputs(METRICS.get("localization"), {"nprobes": 4})


def test_a_shape_surface_reduction_error_stays_a_bench_error() -> None:
    with pytest.raises(BenchError, match="chamfer_reduction must be 'mean' or 'sum'"):
        declared_outputs(METRICS.get("shape_surface"), {"chamfer_reduction": "max"})


def test_outputs_follow_the_parameters() -> None:
    assert declared_outputs(METRICS.get("topk_accuracy"), {"k": "3"}) == {"top3_accuracy": True}
    assert list(declared_outputs(METRICS.get("retrieval"), {"ks": [5, 1]})) == [
        "recall@1", "recall@5", "mAP"]
    assert declared_outputs(METRICS.get("keypoint_3d"), {"alignment": "procrustes",
                                                         "extra_auc_mm": [[20, 50]]}) == {
        "pa_mpjpe_mm": False, "pa_auc_0_50": True, "pa_auc_20_50": True}


VALIDATE_ALL = """
import json, sys
from bench.cli import main
from bench.spec import task_names
codes = {{name: main(["validate", name, "--no-smoke"]) for name in task_names()}}
loaded = sorted({{m.split(".")[0] for m, module in sys.modules.items()
                 if type(module).__name__ != "_LazyModule"}} & set({heavy!r}))
print(json.dumps({{"codes": codes, "loaded": loaded}}))
"""


def test_validating_every_shipped_task_loads_no_heavy_library() -> None:
    done = subprocess.run([sys.executable, "-c", VALIDATE_ALL.format(heavy=HEAVY)],
                          cwd=PACKAGE_PARENT, capture_output=True, text=True, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(report["codes"]) == set(task_names())
    assert set(report["codes"].values()) == {0}
    assert report["loaded"] == []


def test_lazy_import_runs_the_module_on_first_attribute_access(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mark = tmp_path / "ran"
    (tmp_path / "lazy_probe_module.py").write_text(
        f"from pathlib import Path\nPath({str(mark)!r}).touch()\nVALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_probe_module", raising=False)
    try:
        module = lazy_import("lazy_probe_module")
        assert not mark.exists()
        assert lazy_import("lazy_probe_module") is module
        assert module.VALUE == 42
        assert mark.exists()
    finally:
        sys.modules.pop("lazy_probe_module", None)


def test_lazy_import_of_a_missing_module_fails_at_once() -> None:
    with pytest.raises(ModuleNotFoundError, match="no_such_module_here"):
        lazy_import("no_such_module_here")


def test_a_plugin_metric_without_declare_is_built_to_answer() -> None:
    class PluginMetric(Metric):
        def __init__(self, scale: float = 1.0) -> None:
            super().__init__()
            if scale <= 0:
                raise ValueError("scale must be positive")
            self.higher_is_better = {"plugin_score": True}

    def factory(scale: float = 1.0) -> PluginMetric:
        return PluginMetric(scale)

    assert declared_outputs(PluginMetric, {"scale": 2.0}) == {"plugin_score": True}
    assert declared_outputs(factory, {}) == {"plugin_score": True}
    with pytest.raises(ValueError, match="scale must be positive"):
        declared_outputs(PluginMetric, {"scale": 0})
