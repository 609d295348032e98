"""`rebill demo --faults`, run as a real process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from models import OutcomeClass


def test_fault_demo_shows_every_outcome_class(tmp_path: Path, redis_url: str) -> None:
    env = {**os.environ, "REBILL_REDIS_URL": redis_url}
    completed = subprocess.run(
        [sys.executable, "-m", "rebill", "demo", "--faults",
         "--workdir", str(tmp_path / "demo")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    output = completed.stdout
    for outcome in OutcomeClass:
        if outcome is OutcomeClass.IN_FLIGHT:
            continue
        match = re.search(rf"^  {outcome.value}\s+(\d+) attempt\(s\)", output, re.M)
        assert match, f"no summary line for {outcome}"
        assert int(match.group(1)) >= 1, f"no attempt ended {outcome}"
    assert "orders charged twice: 0" in output
    assert "Stores still paused: none" in output
    assert re.search(r"Renewals: .*\d+ paid", output)
    assert "duplicate transaction (code 30105)" in output
    assert "5.0 days late" in output
