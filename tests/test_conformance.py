"""RFC 6455 conformance: the Autobahn|Testsuite fuzzing client against the real server's echo endpoint.

Each test runs scripts/conformance.py, which starts `server.py` with a config made for the suite and
passes only when every case ends OK or INFORMATIONAL (docs/conformance.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import ROOT

sys.path.insert(0, str(ROOT / "scripts"))

import conformance

pytestmark = pytest.mark.conformance

SCRIPT = ROOT / "scripts" / "conformance.py"
RUN_TIMEOUT_S = 1800


def cannot_run(why: str) -> None:
    """A developer without the tools gets a skip with the hint; CI must always run these tests."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true, so the conformance tests must run, but {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="module")
def wstest() -> Path:
    """wstest, built into the cache on first use (about a minute), then reused."""
    try:
        return conformance.build()
    except conformance.CannotBuildError as e:
        why = f"wstest cannot be built: {e}"
    cannot_run(why)


def run_suite(*args: str, report_dir: Path) -> None:
    """scripts/conformance.py ARGS; fails with its per-case lines and summary unless every case passes."""
    done = subprocess.run([sys.executable, str(SCRIPT), *args, "--report-dir", str(report_dir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
    output = done.stdout + done.stderr
    if done.returncode == conformance.EXIT_CANNOT_BUILD:
        pytest.fail(f"the conformance run could not start:\n{output}", pytrace=False)
    if done.returncode != 0:
        pytest.fail(f"not every Autobahn case is OK or INFORMATIONAL:\n{output}", pytrace=False)


def test_echo_conforms_over_ws(wstest: Path, tmp_path: Path) -> None:
    run_suite(report_dir=tmp_path / "reports")


def test_echo_conforms_over_wss(wstest: Path, tmp_path: Path) -> None:
    run_suite("--tls", report_dir=tmp_path / "reports")


def test_echo_conforms_with_compression(wstest: Path, tmp_path: Path) -> None:
    """permessage-deflate negotiated: cases 12.1, 13.1 and 13.2 are added to the others."""
    run_suite("--compression", report_dir=tmp_path / "reports")
