"""The metric names: the worker's exposition, docs/observability.md and the Grafana dashboard
agree; histogram buckets count an observation on their bound."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from aioq.metrics import WorkerMetrics
from aioq.metrics._figures import Histogram
from aioq.worker.observe import Outcome

ROOT = Path(__file__).resolve().parents[2]
SUFFIXES = re.compile(r"_(bucket|sum|count)$")


def exported() -> set[str]:
    metrics = WorkerMetrics("w", ["default"], lambda: 4)
    metrics.started("default", "t", 0.1)
    metrics.finished("default", "t", Outcome.SUCCEEDED, 0.2)
    metrics.pending["default"] = 0
    text = generate_latest(metrics.registry).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_every_exported_name_is_documented_and_every_documented_one_exported() -> None:
    page = (ROOT / "docs" / "observability.md").read_text()
    documented = set(re.findall(r"^\| `(aioq_[a-z_]+)` \|", page, re.MULTILINE))
    names = {SUFFIXES.sub("", n) for n in exported()}
    assert documented == names


def test_the_grafana_dashboard_queries_only_exported_names() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "aioq.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {n for e in exprs for n in re.findall(r"aioq_[a-z_]+", e)}
    assert used <= exported()
    assert {SUFFIXES.sub("", n) for n in used} == {SUFFIXES.sub("", n) for n in exported()}


def test_a_histogram_counts_a_value_on_its_bound_in_that_bucket() -> None:
    histogram = Histogram((0.1, 1.0))
    for value in (0.1, 0.5, 1.0, 7.0):
        histogram.observe(value)
    buckets, total = histogram.cumulative()
    assert buckets == [("0.1", 1), ("1.0", 3), ("+Inf", 4)]
    assert total == 8.6


def test_outcomes_match_the_documented_list() -> None:
    page = (ROOT / "docs" / "observability.md").read_text()
    table = page.split("`outcome` is one of:")[1].split("\n\n")[1]
    assert set(re.findall(r"^\| `([a-z_]+)` \|", table, re.MULTILINE)) == {o.value for o in Outcome}


def test_metrics_without_the_extra_is_one_clear_error() -> None:
    code = """
import sys
sys.modules["prometheus_client"] = None  # as if the extra were not installed
from aioq.errors import ConfigError
from aioq.options import WorkerOptions
from aioq.worker.instruments import open_metrics
assert open_metrics(WorkerOptions(), "w", ["default"], lambda: 1) is None
try:
    open_metrics(WorkerOptions(metrics_port=0), "w", ["default"], lambda: 1)
except ConfigError as e:
    print(e)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'aioq-nats[metrics]'" in out.stdout
