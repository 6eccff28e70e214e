"""The log-based metrics, dashboard and alerts (terraform/monitoring.tf) read fields the function
really writes: the function runs (HTTP with API keys, events, a cold start, a cache hit, errors,
storage trouble), its log lines become Cloud Logging entries, and every metric's filter must match
some of them and its extractors find their fields there. Dashboard widgets and alerts must read
declared metrics (or the platform's own)."""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

import pytest
import requests

from function import auth
from tests.conftest import ServerFactory
from tests.deploy import iac

PLATFORM_METRICS = {
    "run.googleapis.com/container/instance_count",
    "pubsub.googleapis.com/subscription/num_undelivered_messages",
}
# The filter terms the function's lines are matched on; resource.* is the platform's.
TERM = re.compile(r'^(?P<path>[\w.]+)(?:(?P<op>=)(?P<value>"[^"]*"|true|false)|:\*)$')
EXTRACTED = re.compile(r"(?:REGEXP_)?EXTRACT\(([\w.]+)")


def entry(line: dict[str, Any]) -> dict[str, Any]:
    """A JSON line as Cloud Logging stores it: severity, time and httpRequest lifted out of the payload."""
    payload = {k: v for k, v in line.items() if k not in {"severity", "time", "httpRequest"}}
    return {"severity": line["severity"], "httpRequest": line.get("httpRequest"), "jsonPayload": payload}


def field(entry: dict[str, Any], path: str) -> Any:
    value: Any = entry
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def matches(filter_: str, entry: dict[str, Any]) -> bool:
    for term in filter_.split(" AND "):
        if term.startswith("resource."):
            continue
        m = TERM.match(term)
        assert m, f"filter term {term!r} is outside what this test evaluates"
        value = field(entry, m["path"])
        if value is None:
            return False
        if m["op"] and json.dumps(value) != m["value"]:
            return False
    return True


def plain(text: str) -> str:
    """A filter or extractor with the locals and the example name prefix filled in."""
    for name in ("http_lines", "run_logs"):
        text = text.replace("${local." + name + "}", iac.unquote(iac.locals_()[name]))
    return text.replace("${var.name_prefix}", iac.example_values()["name_prefix"]).replace('\\"', '"')


def metrics() -> dict[str, dict[str, Any]]:
    """Each log-based metric's filter and extractors; for_each ones expanded from their locals."""
    out = {}
    for name, body in iac.resources("google_logging_metric").items():
        labels = [plain(iac.unquote(v)) for v in (body.get("label_extractors") or {}).values()]
        if "for_each" in body:
            for key, spec in iac.locals_()[iac.expr(body["for_each"]).removeprefix("local.")].items():
                value = iac.unquote(body["value_extractor"]).replace(
                    "${each.value.field}", iac.unquote(spec["field"])
                )
                out[key] = {"filter": plain(iac.unquote(spec["filter"])), "labels": labels, "value": value}
        else:
            value = plain(iac.unquote(body.get("value_extractor", "")))
            out[name] = {"filter": plain(iac.unquote(body["filter"])), "labels": labels, "value": value}
    return out


def push(data: object) -> dict:
    message = {
        "data": base64.b64encode(json.dumps(data).encode()).decode(),
        "messageId": uuid.uuid4().hex[:16],
    }
    return {"message": message, "subscription": "projects/p/subscriptions/s"}


@pytest.fixture(scope="module")
def entries(start_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("observability")
    keys = tmp / "keys.json"
    key, key_id = auth.new_key()
    keys.write_text(json.dumps({"keys": [{"id": key_id, "sha256": auth.digest(key), "label": "metrics"}]}))
    blocker = tmp / "a-file"
    blocker.write_text("storage cannot live inside a file")
    http = start_server(TTS_OUTPUT_URI=str(tmp / "out"), TTS_ENGINES="hibari", TTS_API_KEYS_FILE=str(keys))
    broken = start_server(TTS_OUTPUT_URI=str(blocker / "out"), TTS_ENGINES="hibari")
    event = start_server("synthesize_event", TTS_OUTPUT_URI=str(tmp / "out"), TTS_ENGINES="hibari")
    broken_event = start_server("synthesize_event", TTS_OUTPUT_URI=str(blocker / "out"), TTS_ENGINES="hibari")
    headers = {"X-API-Key": key}
    body = {"text": "Metrics are made of log lines."}
    for _ in range(2):  # the first loads the model and synthesizes; the second is a cache hit
        assert requests.post(f"{http.url}/synthesize", json=body, headers=headers, timeout=60).ok
    assert (
        requests.post(f"{http.url}/synthesize", json={"text": ""}, headers=headers, timeout=30).status_code
        == 400
    )
    assert requests.get(f"{http.url}/voices", timeout=30).status_code == 401
    assert requests.post(f"{broken.url}/synthesize", json=body, timeout=60).status_code == 503
    done = push({"text": "An event, spoken once.", "output": "metrics/once"})
    for delivery in (done, done, push({"text": ""})):  # done, duplicate, failed
        assert requests.post(f"{event.url}/", json=delivery, timeout=60).ok
    assert requests.post(f"{broken_event.url}/", json=push(body), timeout=60).status_code >= 500
    lines = [
        json.loads(line)
        for server in (http, broken, event, broken_event)
        for line in server.logs().splitlines()
        if line.startswith("{")
    ]
    assert key_id in {line.get("key_id") for line in lines} and key not in "\n".join(map(json.dumps, lines))
    return [entry(line) for line in lines]


def test_every_metric_matches_real_lines_and_extracts_fields_they_carry(
    entries: list[dict[str, Any]],
) -> None:
    found = metrics()
    assert len(found) == 10
    for name, metric in found.items():
        matched = [e for e in entries if matches(metric["filter"], e)]
        assert matched, f"{name}: no line the function wrote matches {metric['filter']}"
        for extractor in [*metric["labels"], metric["value"]]:
            if not extractor:
                continue
            (path,) = EXTRACTED.findall(extractor)
            assert any(field(e, path) is not None for e in matched), f"{name}: no matched line has {path}"
        if metric["value"]:
            (path,) = EXTRACTED.findall(metric["value"])
            assert all(isinstance(field(e, path), int | float) for e in matched), (
                f"{name}: {path} not numeric"
            )


def test_outcomes_and_error_codes_the_metrics_count_are_written(entries: list[dict[str, Any]]) -> None:
    payloads = [e["jsonPayload"] for e in entries]
    outcomes = {p.get("outcome") for p in payloads if p.get("logger") == "function.event"}
    assert {"done", "duplicate", "failed", "retry"} <= outcomes
    errors = {p.get("error") for p in payloads}
    assert {"storage_unavailable", "missing_api_key", "empty_text"} <= errors
    assert {p.get("cached") for p in payloads if "cached" in p} == {True, False}
    assert any(p.get("key_id") for p in payloads)


def dashboard() -> dict[str, Any]:
    text = (iac.TERRAFORM / "dashboard.json.tftpl").read_text(encoding="utf-8")
    values = {"metric": "logging.googleapis.com/user/tts", "promql": "logging_googleapis_com:user_tts"}
    text = re.sub(
        r"\$\{(\w+)\}", lambda m: str(values.get(m[1], 1 if m[1] in {"cpu", "max_instances"} else "x")), text
    )
    return json.loads(text)


def strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


def metric_types(block: Any) -> set[str]:
    """The metrics a widget or alert reads: its filters' metric.type and its PromQL names."""
    text = "\n".join(strings(block)).replace('\\"', '"')
    types = set(re.findall(r'metric\.type="([^"]+)"', text))
    types |= {f"logging.googleapis.com/user/tts/{m}" for m in re.findall(r"user_tts_(\w+?)_sum", text)}
    return {t.replace("${local.metric}", "logging.googleapis.com/user/tts") for t in types}


def test_dashboard_widgets_and_alerts_read_declared_metrics() -> None:
    declared = {f"logging.googleapis.com/user/tts/{name}" for name in metrics()}
    tiles = dashboard()["mosaicLayout"]["tiles"]
    assert len(tiles) == 10
    for tile in tiles:
        used = metric_types(tile)
        assert used and used <= declared | PLATFORM_METRICS, (tile["widget"]["title"], used)
    alerts = iac.resources("google_monitoring_alert_policy")
    assert len(alerts) == 5
    for name, alert in alerts.items():
        used = metric_types(alert)
        assert used and used <= declared | PLATFORM_METRICS, (name, used)
        assert iac.expr(alert["notification_channels"]) == "var.notification_channels"


def test_dashboard_names_every_panel_the_issue_asks_for() -> None:
    titles = " | ".join(t["widget"]["title"] for t in dashboard()["mosaicLayout"]["tiles"]).lower()
    for panel in (
        "per second",
        "p95",
        "error ratio",
        "max_instances",
        "cache hit",
        "cpu second",
        "backlog",
        "dead",
    ):
        assert panel in titles, panel


def test_the_api_key_secret_is_mounted_where_the_function_reads_it() -> None:
    locals_ = iac.locals_()
    path = f"{iac.unquote(locals_['api_keys_dir'])}/{iac.unquote(locals_['api_keys_filename'])}"
    assert '"${local.api_keys_dir}/${local.api_keys_filename}"' in locals_["api_keys_file"]
    assert path == "/secrets/api-keys/keys.json"
    assert iac.service_env("http")["TTS_API_KEYS_FILE"] == "${local.api_keys_file}"
    assert "TTS_API_KEYS_FILE" not in iac.service_env("event")
    run = iac.resources("google_cloud_run_v2_service")["this"]
    assert iac.expr(run["invoker_iam_disabled"]) == 'each.key == "http" && var.auth_mode == "api_key"'
