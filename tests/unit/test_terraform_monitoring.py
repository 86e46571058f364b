"""monitoring.tf, evaluated: metrics, alerts and the dashboard refer to each other correctly.

Whether each metric's filter matches the lines the code writes is
tests/integration/test_monitoring_logs.py's job; this checks the Terraform side.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.support.terraform import PROJECT, STACK, Evaluator, Unknown

CHANNELS = ["projects/ragline-test-1/notificationChannels/42"]


def _evaluator() -> Evaluator:
    return Evaluator(STACK, {**PROJECT, "alert_notification_channels": CHANNELS})


def _metric_types(evaluator: Evaluator) -> set[str]:
    return set(evaluator.local("metric_type").values())


def test_log_metrics_are_named_by_prefix_and_distributions_extract_a_value() -> None:
    evaluator = _evaluator()
    metric = STACK.resource("google_logging_metric", "metric")
    for key, spec in evaluator.local("log_metrics").items():
        scope = {"each": {"key": key, "value": spec}}
        name = evaluator.evaluate(metric.attributes["name"], scope)
        assert name == f"ragline_{key}"
        assert f"logging.googleapis.com/user/{name}" in _metric_types(evaluator)
        assert ('resource.type="cloud_run_revision"') in spec["filter"], key
        assert spec["filter"].count('"') % 2 == 0, f"{key}: unbalanced quotes"
        if spec["value_type"] == "DISTRIBUTION":
            assert spec["value"] == "EXTRACT(jsonPayload.duration_ms)", key
        else:
            assert spec["value"] is None, key
        for extractor in spec["labels"].values():
            assert re.fullmatch(r"EXTRACT\([A-Za-z_.]+\)", extractor), key


def _alert_filters(evaluator: Evaluator) -> dict[str, list[str]]:
    """Alert policy name -> the metric types its conditions read."""
    found: dict[str, list[str]] = {}
    for name, policy in STACK.of_kind("resource", "google_monitoring_alert_policy").items():
        scope: dict[str, Any] = {}
        if "for_each" in policy.attributes:
            items = evaluator.evaluate(policy.attributes["for_each"])
            key, value = next(iter(items.items()))
            scope = {"each": {"key": key, "value": value}}
        channels = evaluator.evaluate(policy.attributes["notification_channels"], scope)
        assert channels == CHANNELS, name
        for condition in (b for b in policy.blocks if b.kind == "conditions"):
            threshold = condition.block("condition_threshold")
            text = evaluator.evaluate(threshold.attributes["filter"], scope)
            if isinstance(text, Unknown):
                text = text.address
            found.setdefault(name, []).extend(re.findall(r'metric\.type="([^"]+)"', text))
    return found


def test_alerts_cover_dead_letters_failures_5xx_and_every_subscription_backlog() -> None:
    evaluator = _evaluator()
    filters = _alert_filters(evaluator)
    types = evaluator.local("metric_type")
    assert filters["dead_letter"] == [types["dead_lettered"]]
    assert filters["failed_versions"] == [types["versions_failed"]]
    assert filters["http_5xx"] == ["run.googleapis.com/request_count"]
    assert filters["oldest_unacked"] == [
        "pubsub.googleapis.com/subscription/oldest_unacked_message_age"
    ]
    # One backlog alert per pipeline subscription and the dead letters'.
    watched = evaluator.local("watched_subscriptions")
    assert set(watched) == {"parse", "chunk", "index", "dead_letter", "webhooks"}
    assert all(isinstance(name, Unknown) for name in watched.values())


def test_dashboard_charts_every_log_metric() -> None:
    evaluator = _evaluator()
    dashboard = STACK.resource("google_monitoring_dashboard", "ragline")
    board = json.loads(evaluator.evaluate(dashboard.attributes["dashboard_json"]))
    tiles = board["mosaicLayout"]["tiles"]
    charted = {
        re.search(
            r'metric\.type="([^"]+)"', data["timeSeriesQuery"]["timeSeriesFilter"]["filter"]
        ).group(1)  # type: ignore[union-attr]
        for tile in tiles
        for data in tile["widget"]["xyChart"]["dataSets"]
    }
    assert charted == _metric_types(evaluator)
    # Tiles sit side by side in a 48-column grid without overlapping.
    cells = {(tile["xPos"], tile["yPos"]) for tile in tiles}
    assert len(cells) == len(tiles)
    assert all(tile["xPos"] + tile["width"] <= board["mosaicLayout"]["columns"] for tile in tiles)


def test_monitoring_apis_are_enabled() -> None:
    apis = _evaluator().local("apis")
    assert {"logging.googleapis.com", "monitoring.googleapis.com"} <= set(apis)
