"""The Grafana dashboard, the alert rules and the Prometheus example only use metrics that exist.

Fast checks on the files under grafana/ and config/prometheus.yml. The promtool checks run when
promtool is installed (Debian: ``apt-get install prometheus``); tests/observers/test_alert_rules.py
runs promtool's unit tests of every alert, and tests/e2e/test_prometheus_e2e.py evaluates the
same queries in a real Prometheus scraping a real daemon.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from sharpmld.observers.cluster_metrics import ClusterMetrics
from sharpmld.observers.metrics import Metrics
from sharpmld.observers.worker_metrics import WorkerMetrics
from sharpmld.queue.layout import Layout

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "grafana"
DASHBOARD = GRAFANA / "sharpmld.json"
ALERTS = GRAFANA / "alerts.yml"
PROMETHEUS_CONFIG = REPO / "config" / "prometheus.yml"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDER = GRAFANA / "provisioning" / "dashboards" / "sharpmld.yml"
PROMTOOL = shutil.which("promtool")
NO_PROMTOOL = "promtool is not installed (Debian: apt-get install -y --no-install-recommends prometheus)"

INSTANCE = 'instance="$instance"'
HOST = 'host=~"$host"'
DS_UID = "${DS_PROMETHEUS}"

# Title -> (panel type, unit): the panels the dashboard must keep.
EXPECTED_PANELS = {
    "Throughput": ("timeseries", "opm"),
    "Queue depth by state": ("timeseries", "short"),
    "Oldest waiting job": ("timeseries", "s"),
    "Failure rate by code": ("timeseries", "opm"),
    "Failure ratio": ("timeseries", "percentunit"),
    "Stage latency p50": ("timeseries", "s"),
    "Stage latency p95": ("timeseries", "s"),
    "Worker memory": ("timeseries", "decbytes"),
    "Worker restarts by reason": ("timeseries", "short"),
    "Disk free and bytes per state": ("timeseries", "decbytes"),
    "Engine readiness": ("timeseries", "none"),
    "Engine ready": ("stat", "none"),
    "Time since last scan": ("stat", "s"),
    "Free disk": ("stat", "decbytes"),
    "Build info": ("table", "none"),
    "Workers connected by host": ("timeseries", "short"),
    "Photos on the broker": ("timeseries", "short"),
    "Oldest photo not yet done": ("timeseries", "s"),
    "Redeliveries and commit conflicts": ("timeseries", "opm"),
    "Photos by host": ("timeseries", "opm"),
    "Inference time p50 by host": ("timeseries", "s"),
    "Worker memory by host": ("timeseries", "decbytes"),
    "Models warm and busy by host": ("timeseries", "short"),
}
# Panels that read the cluster workers' own /metrics, selected by host rather than instance.
WORKER_PANELS = frozenset(
    ("Photos by host", "Inference time p50 by host", "Worker memory by host", "Models warm and busy by host")
)

# Alert -> severity: the alerts agreed on, and which of them page (critical). What makes each
# one fire is tested by promtool on grafana/alerts_test.yml (tests/observers/test_alert_rules.py).
EXPECTED_ALERTS = {
    "SharpmldDown": "critical",
    "SharpmldScanStalled": "critical",
    "SharpmldEngineNotReady": "critical",
    "SharpmldHighFailureRatio": "warning",
    "SharpmldQueueBacklog": "warning",
    "SharpmldSlowJobs": "warning",
    "SharpmldLowDisk": "warning",
    "SharpmldWorkerMemoryHigh": "warning",
    "SharpmldNoClusterWorkers": "critical",
    "SharpmldHighRedeliveryRate": "warning",
    "SharpmldOldestPhotoPending": "warning",
}

# Words of PromQL that look like identifiers but are not metric names. Functions are also
# recognised by the "(" after them; aggregations are listed because a by/without clause can
# stand between them and their "(".
_PROMQL_WORDS = """
    and or unless by without on ignoring group_left group_right bool offset atan2 inf nan sum min
    max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio rate
    irate increase delta idelta deriv predict_linear resets changes absent absent_over_time
    histogram_quantile time timestamp vector scalar clamp clamp_min clamp_max label_replace
    label_join avg_over_time min_over_time max_over_time sum_over_time count_over_time
    last_over_time quantile_over_time stddev_over_time present_over_time abs ceil floor round exp ln
    log2 log10 sqrt sort sort_desc start end
"""
PROMQL_WORDS = frozenset(_PROMQL_WORDS.split())

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE)
_IDENTIFIER = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(?![\w:]|\s*\()")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, keywords or label names)."""
    text = _STRING.sub('""', expr)  # label values, label_replace arguments
    text = re.sub(r"#[^\n]*", " ", text)  # comments
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries, $__rate_interval
    text = _GROUPING.sub(" ", text)  # by (le, stage), on (instance), group_left (device)
    text = re.sub(r"\boffset\s+-?[\w$]+", " ", text, flags=re.IGNORECASE)
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # Grafana variables outside selectors
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in PROMQL_WORDS}


def exposed_names(tmp_path: Path, *, worker: bool = False) -> set[str]:
    """Every series name the daemon's registry (or a cluster worker's) can expose, plus
    Prometheus's own ``up``.

    A labelled family with no children yet has no samples, so names come from each family's
    type (a counter is stored as ``<name>_total``, a histogram as ``_bucket``/``_sum``/``_count``)
    as well as from the samples themselves.
    """
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    names = {"up"}
    if worker:
        registry = WorkerMetrics("host1").registry
    else:
        metrics = Metrics(Layout(tmp_path))
        ClusterMetrics(metrics)  # the intake's cluster families, registered in cluster mode only
        registry = metrics.registry
    for family in registry.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """All panels, including those nested in collapsed rows."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every query in the dashboard."""
    return [
        (panel["title"], target["refId"], target["expr"])
        for panel in iter_panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]


# -- a reader for the alert rules file ----------------------------------------------------------
# The test environment has no YAML library, so this reads the shape grafana/alerts.yml uses
# (a list of `- alert:` mappings with plain, quoted or block scalars); promtool checks the real
# YAML, and the end-to-end test gets the rules from Prometheus itself.


def _scalar(lines: list[str], i: int, indent: int, value: str) -> tuple[str, int]:
    """The value of a key on line ``i - 1``: inline, or a | / > block of deeper lines."""
    value = value.strip()
    if value[:1] in "|>" and value.rstrip("-+")[1:] == "":
        block = []
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > indent):
            block.append(lines[i].strip())
            i += 1
        joiner = "\n" if value[0] == "|" else " "
        return joiner.join(block).strip(), i
    if value[:1] == '"':
        return json.loads(value), i
    if value[:1] == "'":
        return value[1:-1].replace("''", "'"), i
    return value, i


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def alert_rules(text: str) -> list[dict[str, Any]]:
    """The alerting rules of a rules file: alert, expr, for, labels, annotations."""
    rules: list[dict[str, Any]] = []
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    i = 0
    while i < len(lines):
        match = re.match(r"^(\s*)- alert:\s*(\S+)\s*$", lines[i])
        i += 1
        if not match:
            continue
        key_indent = len(match.group(1)) + 2
        rule: dict[str, Any] = {"alert": match.group(2), "labels": {}, "annotations": {}}
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) >= key_indent):
            line = lines[i]
            i += 1
            if not line.strip() or _indent(line) != key_indent:
                continue
            key, _, value = line.strip().partition(":")
            if key in ("labels", "annotations"):
                while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > key_indent):
                    inner = lines[i]
                    i += 1
                    if inner.strip():
                        name, _, raw = inner.strip().partition(":")
                        rule[key][name], i = _scalar(lines, i, _indent(inner), raw)
            else:
                rule[key], i = _scalar(lines, i, key_indent, value)
        rules.append(rule)
    return rules


def load_alerts() -> list[dict[str, Any]]:
    return alert_rules(ALERTS.read_text())


# -- the metric-name extractor itself -----------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            "histogram_quantile(0.95, sum by (le, stage) "
            '(rate(a_bucket{instance="$instance", stage=~"job|x"}[$__rate_interval])))',
            {"a_bucket"},
        ),
        ('up{job="sharpmld"} == 0 or absent(up{job="sharpmld"})', {"up"}),
        ("a_total / on (instance) group_left (device) b_info offset 5m > bool 12e9", {"a_total", "b_info"}),
        ("time() - last_seconds > 120", {"last_seconds"}),
        ("sum without (code) (rate(c_total[5m])) * 60 unless ignoring(code) d", {"c_total", "d"}),
        ('label_replace(e, "dst", "$1", "src", "(.*)") and sum(f) by (g)', {"e", "f"}),
        ("max_over_time(g[1h:5m]) + rate (h_total[1m])", {"g", "h_total"}),
        ("count(i) # sum(not_a_metric)\n", {"i"}),
    ],
)
def test_metric_names_are_extracted_from_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_the_rules_reader_reads_block_and_quoted_scalars() -> None:
    text = (
        "groups:\n  - name: g\n    rules:\n"
        "      - alert: A\n        expr: |\n          x\n            > 1\n        for: 5m\n"
        "        labels:\n          severity: warning\n        annotations:\n"
        '          summary: "s {{ $value }}"\n'
        "          description: >-\n            two\n            lines\n"
        "      - alert: B\n        expr: y == 0\n"
    )
    assert alert_rules(text) == [
        {
            "alert": "A",
            "expr": "x\n> 1",
            "for": "5m",
            "labels": {"severity": "warning"},
            "annotations": {"summary": "s {{ $value }}", "description": "two lines"},
        },
        {"alert": "B", "expr": "y == 0", "labels": {}, "annotations": {}},
    ]


# -- the dashboard ------------------------------------------------------------------------------


def test_dashboard_identity_and_variables() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] == "sharpmld"
    assert dashboard["title"] == "sharpmld"
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}

    ds = variables["DS_PROMETHEUS"]
    assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
    provisioned_uid = re.search(r"^\s*uid:\s*(\S+)\s*$", DATASOURCES.read_text(), re.MULTILINE)
    assert provisioned_uid, "grafana/provisioning/datasources/prometheus.yml has no uid"
    assert ds["current"]["value"] == provisioned_uid.group(1)

    instance = variables["instance"]
    assert instance["type"] == "query"
    assert instance["datasource"]["uid"] == DS_UID
    # A daemon-only series: the cluster workers' instances are not daemons to choose from.
    assert instance["definition"] == "label_values(sharpmld_queue_jobs, instance)"
    query = instance["query"]
    assert (query["query"] if isinstance(query, dict) else query) == instance["definition"]

    host = variables["host"]
    assert host["definition"] == "label_values(sharpmld_cluster_worker_holding, host)"
    assert host["multi"] and host["includeAll"] and host["allValue"] == ".*"


def test_dashboard_has_the_expected_panels() -> None:
    panels = [p for p in iter_panels(load_dashboard()["panels"]) if p["type"] != "row"]
    by_title = {p["title"]: p for p in panels}
    assert len(by_title) == len(panels), "panel titles must be unique"
    missing = set(EXPECTED_PANELS) - set(by_title)
    assert not missing, f"panels missing: {sorted(missing)}"
    for title, (kind, unit) in EXPECTED_PANELS.items():
        panel = by_title[title]
        assert panel["type"] == kind, title
        assert panel["fieldConfig"]["defaults"]["unit"] == unit, title
        assert panel["targets"], f"{title} has no query"
    assert {p["type"] for p in panels} <= {"timeseries", "stat", "table"}


def test_dashboard_layout_is_consistent() -> None:
    panels = list(iter_panels(load_dashboard()["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    taken: dict[tuple[int, int], str] = {}
    for panel in panels:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in taken, f"{panel['title']!r} overlaps {taken[(x, y)]!r}"
                taken[(x, y)] = panel["title"]


def test_every_panel_uses_the_datasource_variable() -> None:
    for panel in iter_panels(load_dashboard()["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": DS_UID}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DS_UID, panel["title"]


def test_every_query_selects_the_instance_or_host_variable() -> None:
    """A daemon's panels show the chosen instance; the workers' panels the chosen hosts."""
    seen_worker_panels = set()
    for title, ref, expr in panel_queries(load_dashboard()):
        names = metric_names(expr)
        assert names, f"{title}/{ref}: no metric in {expr!r}"
        wanted = HOST if title in WORKER_PANELS else INSTANCE
        seen_worker_panels.update({title} & WORKER_PANELS)
        text = _STRING.sub(lambda m: m.group(0).replace("{", "(").replace("}", ")"), expr)
        for name in names:
            pattern = rf"(?<![\w:.$]){re.escape(name)}(?![\w:])(\s*\{{[^}}]*\}})?"
            for selector in re.finditer(pattern, text):
                assert wanted in (selector.group(1) or ""), f"{title}/{ref}: {name} without {wanted}"
    assert seen_worker_panels == WORKER_PANELS


def test_queries_and_alerts_only_use_exposed_metrics(tmp_path: Path) -> None:
    daemon = exposed_names(tmp_path)
    worker = exposed_names(tmp_path, worker=True)
    queries = [
        (f"panel {t}/{r}", e, worker if t in WORKER_PANELS else daemon)
        for t, r, e in panel_queries(load_dashboard())
    ]
    queries += [(f"alert {rule['alert']}", rule["expr"], daemon) for rule in load_alerts()]
    assert len(queries) > 30
    unknown = {
        where: sorted(metric_names(expr) - known)
        for where, expr, known in queries
        if metric_names(expr) - known
    }
    assert not unknown, f"metrics not exposed where the query reads them: {unknown}"
    assert all(metric_names(expr) for _, expr, _ in queries)


# -- the alert rules ----------------------------------------------------------------------------


def test_alert_rules_carry_severity_duration_and_advice() -> None:
    text = ALERTS.read_text()
    assert re.search(r"^groups:\s*\n\s*- name: sharpmld\s*$", text, re.MULTILINE)
    rules = {rule["alert"]: rule for rule in load_alerts()}
    assert set(rules) == set(EXPECTED_ALERTS)
    for name, severity in EXPECTED_ALERTS.items():
        rule = rules[name]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), f"{name} has no for:"
        assert rule["labels"].get("severity") == severity, name
        assert len(rule["annotations"].get("summary", "")) > 20, name
        assert len(rule["annotations"].get("description", "")) > 80, name


def _promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    assert PROMTOOL
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, timeout=60, check=False)


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_promtool_accepts_the_alert_rules() -> None:
    result = _promtool("check", "rules", str(ALERTS))
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, output
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in output


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_promtool_accepts_a_real_scrape(tmp_path: Path) -> None:
    metrics = Metrics(Layout(tmp_path))
    # Children of every labelled family, as a running daemon has them.
    metrics.refresh_disk()
    metrics.model.images_rejected.labels(code="decode_failed").inc()
    metrics.jobs_failed.labels(code="timeout").inc()
    metrics.model.worker_device.labels(device="cpu").set(1)
    metrics.model.worker_restarts.labels(reason="crash").inc()
    metrics.stage.labels(stage="inference").observe(0.7)
    metrics.job_images.observe(3)
    metrics.job_bytes.observe(3e6)
    result = _promtool("check", "metrics", stdin=generate_latest(metrics.registry))
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 0 and not output.strip(), output


# -- configuration examples ---------------------------------------------------------------------


def test_prometheus_example_scrapes_the_daemon_and_loads_the_alerts() -> None:
    text = PROMETHEUS_CONFIG.read_text()
    assert re.search(r"job_name:\s*sharpmld\b", text)
    assert '"127.0.0.1:9464"' in text
    assert re.search(r"scrape_interval:\s*15s", text)
    rule_file = re.search(r"rule_files:\s*\n\s*-\s*(\S+)", text)
    assert rule_file and (PROMETHEUS_CONFIG.parent / rule_file.group(1)).resolve() == ALERTS.resolve()


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_promtool_accepts_the_prometheus_example() -> None:
    result = _promtool("check", "config", str(PROMETHEUS_CONFIG))  # resolves rule_files from there
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, output
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in output


def test_grafana_provisioning_points_at_the_dashboard_and_datasource() -> None:
    provider = DASHBOARD_PROVIDER.read_text()
    assert re.search(r"^\s*type:\s*file\s*$", provider, re.MULTILINE)
    assert re.search(r"^\s*path:\s*\$\{SHARPMLD_GRAFANA_DIR\}\s*$", provider, re.MULTILINE)
    assert DASHBOARD.parent == GRAFANA
    datasource = DATASOURCES.read_text()
    assert re.search(r"^\s*type:\s*prometheus\s*$", datasource, re.MULTILINE)
    assert re.search(r"^\s*url:\s*http://127\.0\.0\.1:9090\s*$", datasource, re.MULTILINE)
