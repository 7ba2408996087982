"""bench/gateway.py still runs (a tiny load; the figures are the benchmark's business)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .helpers import ROOT


@pytest.mark.slow
def test_gateway_benchmark_smoke() -> None:
    out = subprocess.run([sys.executable, "bench/gateway.py", "--smoke"], cwd=ROOT,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "frames/s end to end" in out.stdout and "ACK latency p50" in out.stdout
    assert "codec floor" in out.stdout
