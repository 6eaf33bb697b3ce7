"""Task specs: loading, overrides, and every error reported at once with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.errors import BenchError, SpecError
from bench.spec import load_spec, task_names, validate_spec_file

GOOD = """\
task: tiny
version: 1
family: classification
description: a test task
dataset:
  adapter: mnist
  embedded: digits
metrics:
  - name: accuracy
primary_metric: accuracy
baselines: [logreg]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", task_names())
def test_every_shipped_task_is_valid(name: str) -> None:
    assert validate_spec_file(name) == []
    spec = load_spec(name)
    assert spec.task == name


def test_good_spec_and_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    spec = load_spec(path, ["dataset.embedded=null", "dataset.root=/data/mnist",
                            "protocol.batch_size=8",
                            "dataset.params.class_names=[a, b]"])
    assert spec.dataset.root == "/data/mnist"
    assert spec.protocol["batch_size"] == 8
    assert spec.dataset.params["class_names"] == ["a", "b"]
    assert spec.dataset.split == "test"
    assert spec.leaderboard_name == "tiny.csv"


def test_protocol_hash_ignores_data_location_but_not_protocol(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    base = load_spec(path).protocol_hash()
    assert load_spec(path, ["dataset.root=/elsewhere", "dataset.embedded=null"]).protocol_hash() \
        != base  # another data set
    real = load_spec(path, ["dataset.embedded=null"]).protocol_hash()
    assert load_spec(path, ["dataset.embedded=null", "dataset.root=/elsewhere"]).protocol_hash() \
        == real
    assert load_spec(path, ["protocol.crop=eigen"]).protocol_hash() != base


def test_every_error_is_reported_with_line_and_key(tmp_path: Path) -> None:
    text = GOOD.replace("version: 1", "version: one").replace(
        "  embedded: digits", "  embedded: digits\n  colour: red").replace(
        "adapter: mnist", "adapter: mnsit").replace("- name: accuracy", "- name: acuracy")
    path = write(tmp_path, text)
    errors = validate_spec_file(path)
    assert f"{path}:2: version: Input should be a valid integer" in errors[0]
    assert any(f"{path}:8: dataset.colour: unknown key" == e for e in errors)
    # Schema errors come first; registry names are checked once the schema holds.
    fixed = text.replace("version: one", "version: 1").replace("  colour: red\n", "")
    errors = validate_spec_file(write(tmp_path, fixed))
    assert len(errors) == 2
    assert errors[0].startswith(f"{path}:6: dataset.adapter: unknown adapter 'mnsit'; "
                                "did you mean 'mnist'?")
    assert errors[1].startswith(f"{path}:9: metrics.0.name: unknown metric 'acuracy'; "
                                "did you mean 'accuracy'")


def test_missing_required_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "task: tiny\nversion: 1\n")
    errors = validate_spec_file(path)
    missing = {e.split(": ")[1] for e in errors}
    assert {"family", "description", "dataset", "metrics", "primary_metric"} <= missing
    assert all(e.startswith(f"{path}:1: ") for e in errors)


def test_primary_metric_must_be_an_output(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("primary_metric: accuracy", "primary_metric: top5"))
    (error,) = validate_spec_file(path)
    assert error == f"{path}:10: primary_metric: 'top5' is not a metric output (outputs: accuracy)"


def test_bad_metric_params(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("- name: accuracy",
                                        "- name: accuracy\n  - name: topk_accuracy\n"
                                        "    params: {k: 0}"))
    (error,) = validate_spec_file(path)
    assert ":11: metrics.1.params: bad parameters: k must be >= 1" in error


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("metrics:\n", "metrics: [\n"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(path) in str(info.value) and "malformed YAML" in str(info.value)


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("description: a test task",
                                        "description: !!python/object/apply:os.system [ls]"))
    with pytest.raises(SpecError, match="malformed YAML"):
        load_spec(path)


def test_unknown_task_suggests_names() -> None:
    with pytest.raises(BenchError, match="did you mean digits"):
        load_spec("digit")


def test_override_indexes_lists(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("- name: accuracy",
                                        "- name: accuracy\n  - name: topk_accuracy"))
    spec = load_spec(path, ["metrics.1.params.k=3"])
    assert spec.metrics[1].params == {"k": 3}
    with pytest.raises(BenchError, match="'5' is not an index of a list of 2 items"):
        load_spec(path, ["metrics.5.params.k=3"])


def test_bad_override() -> None:
    with pytest.raises(BenchError, match="KEY.PATH=VALUE"):
        load_spec("digits", ["dataset.root"])


def test_an_embedded_task_refuses_another_root_and_names_the_real_task() -> None:
    with pytest.raises(SpecError, match="use task mnist with --set dataset.root=DIR"):
        load_spec("digits", ["dataset.root=/data/mnist"])
    with pytest.raises(SpecError, match="use task davis-vos with"):
        load_spec("synthetic-davis-vos", ["dataset.root=/data/DAVIS"])
    assert load_spec("davis-vos", ["dataset.root=/data/DAVIS"]).dataset.root == "/data/DAVIS"


def test_nested_and_recursive_aliases_are_refused_before_expansion(tmp_path: Path) -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{','.join([f'*{previous}'] * 9)}]")  # 9^9 leaves
    (error,) = validate_spec_file(write(tmp_path, "\n".join(lines) + "\n"))
    assert error.endswith("expands to more than 20000 YAML nodes (nested aliases?); "
                          "a task spec is small")
    (error,) = validate_spec_file(write(tmp_path, "a: &a [*a]\n"))
    assert "alias refers to itself" in error
