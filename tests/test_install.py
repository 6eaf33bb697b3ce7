"""The Makefile's install: uv gets the package indexes pip is set up with."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "uv_index_flags.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("uv_index_flags", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pip_config_becomes_uv_flags_each_location_once() -> None:
    listed = "\n".join([
        ":env:.default-timeout='180'",
        ":env:.find-links='/opt/wheels'",
        "global.cert='/etc/ssl/certs/ca-certificates.crt'",
        "global.constraint='/etc/xdg/pip/constraints.txt'",
        "global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'",
        "global.find-links='/opt/wheels'",
        "user.index-url='https://mirror.example/simple'",
    ])
    assert load_tool().uv_flags(listed) == [
        "--find-links", "/opt/wheels",
        "--extra-index-url", "file:///opt/pypi/simple",
        "--extra-index-url", "file:///opt/pypi-more/simple",
        "--index-url", "https://mirror.example/simple",
    ]


def test_no_pip_config_gives_no_flags() -> None:
    assert load_tool().uv_flags("") == []


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_lets_python_cache_bytecode() -> None:
    # uv installs no bytecode: where PYTHONDONTWRITEBYTECODE is set, every process of the
    # tests and the demo would compile torch again unless the Makefile's commands may cache it
    probe = 'print-env: ; @echo "$${PYTHONDONTWRITEBYTECODE-unset}"'
    done = subprocess.run(["make", "-s", "-C", str(TOOL.parents[1]), "--eval", probe,
                           "print-env"], env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "unset"
