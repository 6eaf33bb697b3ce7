"""Print the ``uv pip install`` flags for the package indexes and find-links pip is set up
with (pip's config files and PIP_* environment, as ``pip config list`` shows them), so that
uv sees the same wheels pip would: the Makefile installs with uv, and falls back to pip."""

from __future__ import annotations

import ast
import shlex
import subprocess
import sys

FLAGS = {"index-url": "--index-url", "extra-index-url": "--extra-index-url",
         "find-links": "--find-links"}


def uv_flags(pip_config: str) -> list[str]:
    """uv flags from ``pip config list`` output (lines ``scope.key='value'``; a value may
    list several locations separated by whitespace); each location once, in order."""
    flags: list[str] = []
    seen: set[tuple[str, str]] = set()
    for line in pip_config.splitlines():
        key, _, value = line.partition("=")
        flag = FLAGS.get(key.rsplit(".", 1)[-1])
        if flag is None or not value:
            continue
        for location in ast.literal_eval(value).split():
            if (flag, location) not in seen:
                seen.add((flag, location))
                flags += [flag, location]
    return flags


if __name__ == "__main__":
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"],
                            capture_output=True, text=True, check=False).stdout
    print(shlex.join(uv_flags(listed)))
