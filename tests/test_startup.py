"""Startup (issue 14): each command imports only what it uses, checked in fresh processes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.perf.startup import DIGITS_SPEC, PACKAGE_PARENT, time_processes

HEAVY = ("torch", "pandas", "open3d", "sklearn", "cv2", "scipy", "faiss", "skimage")

PROBE = """
import json, sys
from bench.cli import main
try:
    code = main({argv!r})
except SystemExit as exc:
    code = exc.code
print(json.dumps({{"code": code, "modules": sorted(sys.modules)}}))
"""


def imported_by(*argv: str) -> tuple[int, set[str]]:
    """(exit code, top-level and bench/baselines module names) of a fresh `arbench ARGV`."""
    done = subprocess.run([sys.executable, "-c", PROBE.format(argv=list(argv))],
                          cwd=PACKAGE_PARENT, capture_output=True, text=True, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    names = {m if m.startswith(("bench.", "baselines")) else m.split(".")[0]
             for m in report["modules"]}
    return report["code"], names


def test_import_bench_loads_no_torch() -> None:
    done = subprocess.run([sys.executable, "-c", "import bench, sys; "
                           "print(sorted(m for m in sys.modules if m.startswith('torch')))"],
                          cwd=PACKAGE_PARENT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_help_imports_nothing_heavy() -> None:
    code, modules = imported_by("--help")
    assert code == 0
    assert not modules & {*HEAVY, "rich", "pydantic", "yaml"}
    assert not {m for m in modules if m.startswith(("bench.", "baselines"))} - {
        "bench.cli", "bench.errors", "bench.__main__"}


def test_table_reads_the_spec_without_torch_or_metrics() -> None:
    code, modules = imported_by("table", "digits", "--format", "csv")
    assert code == 0
    assert "pandas" in modules
    assert not modules & set(HEAVY) - {"pandas"}
    assert not {m for m in modules if m.startswith(("bench.metrics", "bench.adapters"))}


def test_list_imports_no_registered_module() -> None:
    code, modules = imported_by("list")
    assert code == 0
    assert not modules & set(HEAVY)
    assert not {m for m in modules
                if m.startswith(("bench.metrics", "bench.adapters", "bench.families",
                                 "bench.synth", "baselines."))}


def test_validate_imports_only_the_named_metric_modules() -> None:
    code, modules = imported_by("validate", str(DIGITS_SPEC), "--no-smoke")
    assert code == 0
    assert not modules & {"open3d", "sklearn", "cv2", "scipy", "faiss", "skimage", "pandas"}
    assert {m for m in modules if m.startswith("bench.metrics.")} == {
        "bench.metrics.base", "bench.metrics.classification"}
    assert not {m for m in modules
                if m.startswith(("bench.adapters.", "bench.synth.", "baselines."))}


def test_get_imports_one_module() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from bench.registry import METRICS; "
         "METRICS.get('pose_error'); "
         "print(sorted(m for m in sys.modules if m.startswith('bench.metrics.')))"],
        cwd=PACKAGE_PARENT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['bench.metrics.base', 'bench.metrics.pose']"


def test_perf_case_times_fresh_processes() -> None:
    runs = time_processes(["-m", "bench", "--help"], repeats=2)
    assert len(runs.wall) == len(runs.cpu) == 2
    assert all(0 < seconds < 30 for seconds in runs.wall + runs.cpu)


def test_perf_case_names_a_failing_command() -> None:
    from bench.errors import BenchError

    with pytest.raises(BenchError, match=r"`python -m bench table no-such-task` exited 2: "
                                         r"arbench: error: unknown task 'no-such-task'"):
        time_processes(["-m", "bench", "table", "no-such-task"], repeats=1)



def test_a_checkpoint_reference_imports_no_baseline() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from bench.registry import MODELS; "
         "assert 'my_cnn.pt' not in MODELS; "
         "print(sorted(m for m in sys.modules if m.startswith('baselines.')))"],
        cwd=PACKAGE_PARENT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
