"""Suite-wide fixtures."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_data_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """The tracking log's default store lives under XDG_DATA_HOME: every test (and every process a
    test starts, which inherits the environment) gets its own, never the developer's home."""
    home = tmp_path_factory.mktemp("data-home")
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    yield home


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, object, None]:
    """With MAILPROXY_NO_SKIPS set (the test command sets it), a skipped test fails instead: the
    skips wait for a program or package the test command installs, and a skip there proves nothing."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if os.environ.get("MAILPROXY_NO_SKIPS") and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped, but the test command installs what it needs: {report.longrepr}"
