"""External tools the deployment tests drive: prometheus, promtool, systemd-analyze.

Missing binaries skip the test with a message saying what to install; under CI=true
(.ci/run) they fail instead, so CI cannot pass by silently skipping the proof.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def require(binary: str, package: str, *, ci_required: bool = True) -> str:
    path = shutil.which(binary)
    if path:
        return path
    msg = f"{binary} not found; install the Debian package `{package}`"
    if IN_CI and ci_required:
        pytest.fail(f"{msg} (under CI=true a missing tool is a failure; see .ci/run)")
    pytest.skip(msg)


def run(args: list[str], stdin: str | None = None, cwd: Path | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, input=stdin, capture_output=True, text=True, cwd=cwd,
                          timeout=120)
