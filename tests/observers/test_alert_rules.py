"""Every alert in grafana/alerts.yml fires on the series it is meant for, and only then.

The cases live in grafana/alerts_test.yml (promtool's rule unit-test format, pointing at the
real alerts.yml); this runs them, checks that each alert has a firing and a quiet case, and
checks that the cases bite: the same tests against a rules file with one threshold moved fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.observers.test_dashboard import ALERTS, GRAFANA, NO_PROMTOOL, PROMTOOL, load_alerts

RULE_TESTS = GRAFANA / "alerts_test.yml"

pytestmark = pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)

# Alert -> (text in its expr, a replacement that moves its threshold or condition).
MUTATIONS = {
    "SharpmldDown": ("== 0", "== 2"),
    "SharpmldScanStalled": ("> 120", "> 1200"),
    "SharpmldEngineNotReady": ("for: 10m", "for: 20m"),
    "SharpmldHighFailureRatio": ("> 0.10", "> 0.50"),
    "SharpmldQueueBacklog": ("> 50", "> 49"),
    "SharpmldSlowJobs": ("> 900", "> 1500"),
    "SharpmldLowDisk": ("< 2 *", "< 1.4 *"),
    "SharpmldWorkerMemoryHigh": ("> 0.9 *", "> 0.95 *"),
    "SharpmldNoClusterWorkers": ("connected == 0 and", "connected == 2 and"),
    "SharpmldHighRedeliveryRate": ("* 60 > 1", "* 60 > 4"),
    "SharpmldOldestPhotoPending": ("> 1800", "> 3600"),
}


def promtool_test(rule_tests: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL
    return subprocess.run(
        [PROMTOOL, "test", "rules", str(rule_tests)], capture_output=True, text=True, timeout=60, check=False
    )


def cases() -> dict[str, set[bool]]:
    """Alert -> the outcomes its cases expect (True: fires, False: stays quiet)."""
    out: dict[str, set[bool]] = {}
    text = RULE_TESTS.read_text()
    for name, empty in re.findall(r"alertname:\s*(\w+)\s*\n\s*exp_alerts:[ \t]*(\[\])?", text):
        out.setdefault(name, set()).add(not empty)
    return out


def test_the_alert_rule_unit_tests_pass() -> None:
    result = promtool_test(RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    alerts = {rule["alert"] for rule in load_alerts()}
    assert alerts, "no alerts read from alerts.yml"
    assert "rule_files:\n  - alerts.yml\n" in RULE_TESTS.read_text(), "the tests must load the real file"
    found = cases()
    assert set(found) == alerts, (
        f"alerts without tests: {alerts - set(found)}; unknown: {set(found) - alerts}"
    )
    incomplete = {name: outcomes for name, outcomes in found.items() if outcomes != {True, False}}
    assert not incomplete, f"alerts lacking a firing or a quiet case: {incomplete}"


@pytest.mark.parametrize("alert", sorted(MUTATIONS))
def test_the_cases_catch_a_moved_threshold(alert: str, tmp_path: Path) -> None:
    assert set(MUTATIONS) == {rule["alert"] for rule in load_alerts()}
    old, new = MUTATIONS[alert]
    text = ALERTS.read_text()
    start = text.index(f"- alert: {alert}\n")
    end = text.find("- alert:", start + 1)
    end = len(text) if end < 0 else end
    block = text[start:end]
    assert block.count(old) == 1, f"{alert}: {old!r} is not in its rule once"
    (tmp_path / "alerts.yml").write_text(text[:start] + block.replace(old, new) + text[end:])
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    result = promtool_test(tmp_path / RULE_TESTS.name)
    assert result.returncode != 0, f"moving {alert}'s {old!r} to {new!r} went unnoticed"
    assert f"alertname: {alert}," in result.stdout + result.stderr, result.stdout + result.stderr
