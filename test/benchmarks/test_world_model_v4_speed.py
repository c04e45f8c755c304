"""benchmarks/world_model_v4_speed.py runs (tiny preset) and prints cached and uncached frames/s per context."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "world_model_v4_speed.py"


def test_prints_a_row_per_context() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--preset", "tiny", "--contexts", "4", "8", "--batch-size",
                             "2", "--steps", "2", "--uncached-steps", "1"], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["4", "8"]
    assert all(float(row[1]) > 0 and float(row[2]) > 0 for row in rows)
