"""The deployment guide's systemd unit is one systemd accepts, and keeps its hardening.

systemd does not run here (no init in the test machine), so the unit is checked offline:
``systemd-analyze verify`` reads it as systemd would load it (unknown keys, bad values, commands that
are not executable) and ``systemd-analyze security --offline`` scores its sandboxing. The mailproxy
command lines in it are checked against the CLI by tests/test_docs.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "deployment.md"
# The guide's unit scores 3.8 ("OK"); a unit that lost part of its sandboxing scores higher.
MAX_EXPOSURE = 4.0


def unit_text() -> str:
    blocks = re.findall(r"^```ini\n(.*?)^```$", GUIDE.read_text(), re.MULTILINE | re.DOTALL)
    (unit,) = [b for b in blocks if "[Service]" in b]
    # The guide installs into /opt/mailproxy; here the command is the one this interpreter runs.
    return unit.replace("/opt/mailproxy/bin/mailproxy", str(Path(sys.executable).parent / "mailproxy"))


@pytest.fixture
def unit(tmp_path: Path) -> Path:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (scripts/install-test-deps installs it)")
    path = tmp_path / "mailproxy.service"
    path.write_text(unit_text(), encoding="utf-8")
    return path


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, timeout=60)


def test_systemd_loads_the_unit_without_a_complaint(unit: Path) -> None:
    done = analyze("verify", "--man=no", str(unit))
    # verify exits 0 on unknown keys and bad values, which it reports and ignores: any word is a defect.
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_verify_would_see_a_broken_unit(unit: Path) -> None:
    unit.write_text(unit.read_text().replace("NoNewPrivileges=", "NoNewPrivilege="), encoding="utf-8")
    assert "Unknown key" in analyze("verify", "--man=no", str(unit)).stderr


def test_the_unit_keeps_its_sandboxing(unit: Path) -> None:
    done = analyze("security", "--offline=true", f"--threshold={round(MAX_EXPOSURE * 10)}", str(unit))
    assert done.returncode == 0, done.stdout[-600:]
    assert "Overall exposure level for mailproxy.service" in done.stdout
