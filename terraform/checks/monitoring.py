"""Monitoring (modules/monitoring) held to the code: every log-based metric and log-matching alert
reads a line the code writes, by its message, and only fields that line carries, from a service
whose code writes it; every alert watches a metric that exists, by labels it has; each of what
hurts users first has its alert, e-mailed to var.alert_email."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from terraform.checks.code import manifest, reached_modules
from terraform.checks.logs import Line, logged_lines
from terraform.checks.tree import ROOT, Config, Problems, Tree, single

# What each alert watches (issue 16 point 6), by its resource name in modules/monitoring.
ALERTS = {
    "server_errors": "5xx answers per user-facing function",
    "worker_deliveries": "worker deliveries refused (401/403) or failing",
    "approvals_overdue": "approvals not carried out after 10 minutes",
    "model_failures": "model errors",
    "first_token": "chat's time to the first token (p95)",
    "budget": "a user's daily model tokens near the budget",
}
# Cloud Run's own request metric: its labels, and those of its monitored resource (Cloud Monitoring's
# metrics list, run.googleapis.com/request_count; resource cloud_run_revision).
REQUEST_COUNT = "run.googleapis.com/request_count"
REQUEST_COUNT_LABELS = frozenset({"response_code", "response_code_class", "route"})
REVISION_LABELS = frozenset({"project_id", "service_name", "revision_name", "location", "configuration_name"})
# Where the code's lines go: common/log.py writes JSON to stdout, which Cloud Run logs under this id.
STDOUT_LOG = 'log_id("run.googleapis.com/stdout")'

MESSAGE = re.compile(r'jsonPayload\.message\s*=\s*"([^"]*)"')
PAYLOAD_FIELD = re.compile(r"jsonPayload\.([A-Za-z_][A-Za-z0-9_]*)")
SERVICE = re.compile(r"var\.services\[var\.(\w+)\]")
LOCAL = re.compile(r"\$\{local\.(\w+)\}")
LOGGED_METRIC = re.compile(r"local\.logged\.(\w+)")
METRIC_LABEL = re.compile(r"metric\.labels?\.(\w+)")
RESOURCE_LABEL = re.compile(r"resource\.labels?\.(\w+)")


def check_monitoring(tree: Tree, code_root: Path = ROOT) -> Problems:
    """The monitoring reads what the code logs (from `code_root`), and alerts on what it should."""
    module = tree.modules.get("monitoring")
    if module is None:
        return ["modules/monitoring is missing"]
    problems = _wired(tree)
    problems += _logs_read(module, logged_lines(code_root))
    problems += _metrics_watched(module)
    problems += _alerts(module)
    return problems


def _wired(tree: Tree) -> Problems:
    call = tree.cscx.modules.get("monitoring", {})
    wanted = {"source": "../monitoring", "services": "${local.names}", "alert_email": "${var.alert_email}"}
    return [
        f"modules/cscx: module monitoring must have {name} = {value}"
        for name, value in wanted.items()
        if call.get(name) != value
    ]


def _text(value: str, module: Config) -> str:
    """A filter as Cloud Logging or Monitoring gets it: the module's string locals expanded, HCL's
    escaped quotes unescaped."""
    for _ in range(5):
        expanded = LOCAL.sub(lambda m: str(module.locals.get(m.group(1), m.group(0))), value)
        if expanded == value:
            break
        value = expanded
    return value.replace('\\"', '"')


def _log_readers(module: Config) -> list[tuple[str, str, dict[str, Any]]]:
    """(where, filter, extractors) of every log-based metric and every log-matching alert condition."""
    readers = []
    for (rtype, name), body in module.resources().items():
        if rtype == "google_logging_metric":
            extractors = {**body.get("label_extractors", {}), "value": body.get("value_extractor", "")}
            readers.append((f"google_logging_metric.{name}", str(body.get("filter", "")), extractors))
        elif rtype == "google_monitoring_alert_policy":
            for condition in body.get("conditions", []):
                matched = single(condition.get("condition_matched_log"))
                if matched:
                    where, extractors = f"google_monitoring_alert_policy.{name}", matched.get("label_extractors", {})
                    readers.append((where, str(matched.get("filter", "")), dict(extractors)))
    return readers


def _logs_read(module: Config, lines: dict[str, Line]) -> Problems:
    problems: Problems = []
    variables = module.variables
    for where, raw, extractors in _log_readers(module):
        text = _text(raw, module)
        read = {*PAYLOAD_FIELD.findall(text), *(f for e in extractors.values() for f in PAYLOAD_FIELD.findall(str(e)))}
        read.discard("message")
        messages = MESSAGE.findall(text)
        if STDOUT_LOG not in text:
            problems.append(f"{where}: the code's lines are in {STDOUT_LOG}; the filter does not read it")
        if len(messages) != 1:
            problems.append(f"{where}: the filter must name one line by its message (jsonPayload.message=...)")
            continue
        line = lines.get(messages[0])
        if line is None:
            problems.append(f'{where}: the code logs no line "{messages[0]}"')
            continue
        problems += [
            f'{where}: {name} is not a field of the "{line.message}" line ({", ".join(sorted(map(str, line.files)))})'
            for name in sorted(read - line.fields)
        ]
        for entry_variable in SERVICE.findall(text):
            entry = variables.get(entry_variable, {}).get("default")
            if entry not in manifest():
                problems.append(f"{where}: var.{entry_variable} is no entry point of functions/manifest.json")
                continue
            reached = {path.resolve() for path in reached_modules(manifest()[entry]["source"])}
            if not any((ROOT / file).resolve() in reached for file in line.files):
                problems.append(f'{where}: {entry} never writes the "{line.message}" line')
    return problems


def _metric_labels(module: Config) -> dict[str, frozenset[str]]:
    """Each log-based metric (by resource name) and the labels it has."""
    return {
        name: frozenset(label.get("key", "") for label in single(body.get("metric_descriptor")).get("labels", []))
        for (rtype, name), body in module.resources().items()
        if rtype == "google_logging_metric"
    }


def _metrics_watched(module: Config) -> Problems:
    """Every time series an alert or the dashboard reads exists, and has the labels it filters on."""
    problems: Problems = []
    metrics = _metric_labels(module)
    logged = str(module.locals.get("logged", ""))
    problems += [
        f"local.logged must give the time series of google_logging_metric.{name}"
        for name in metrics
        if f"{name} = google_logging_metric.{name}" not in logged
    ]
    for (rtype, name), body in module.resources().items():
        if rtype != "google_monitoring_alert_policy":
            continue
        for condition in body.get("conditions", []):
            for kind in ("condition_threshold", "condition_absent"):
                spec = single(condition.get(kind))
                for key in ("filter", "denominator_filter"):
                    if key in spec:
                        problems += _series(f"google_monitoring_alert_policy.{name}", str(spec[key]), module, metrics)
    chart = str(module.locals.get("chart", ""))
    problems += [
        f"the dashboard reads local.logged.{key}, which is no log-based metric"
        for key in LOGGED_METRIC.findall(chart)
        if key not in metrics
    ]
    return problems


def _series(where: str, raw: str, module: Config, metrics: dict[str, frozenset[str]]) -> Problems:
    text = _text(raw, module)
    used = LOGGED_METRIC.findall(raw)
    problems = [f"{where}: local.logged.{key} is no log-based metric" for key in used if key not in metrics]
    if used:
        labels = frozenset().union(*(metrics.get(key, frozenset()) for key in used))
    elif f'metric.type="{REQUEST_COUNT}"' in text:
        labels = REQUEST_COUNT_LABELS
    else:
        return [*problems, f"{where}: watches neither a log-based metric (local.logged) nor {REQUEST_COUNT}"]
    problems += [
        f"{where}: the metric has no label {label}" for label in sorted(set(METRIC_LABEL.findall(text)) - labels)
    ]
    problems += [
        f"{where}: cloud_run_revision has no label {label}"
        for label in sorted(set(RESOURCE_LABEL.findall(text)) - REVISION_LABELS)
    ]
    return problems


def _alerts(module: Config) -> Problems:
    problems: Problems = []
    resources = module.resources()
    policies = {name: body for (rtype, name), body in resources.items() if rtype == "google_monitoring_alert_policy"}
    problems += [
        f"no alert on {what} (google_monitoring_alert_policy.{name})"
        for name, what in ALERTS.items()
        if name not in policies
    ]
    problems += [
        f"google_monitoring_alert_policy.{name} notifies nobody (notification_channels = local.channels)"
        for name, body in policies.items()
        if body.get("notification_channels") != "${local.channels}"
    ]
    channel = resources.get(("google_monitoring_notification_channel", "email"), {})
    if (
        channel.get("type") != "email"
        or channel.get("labels") != {"email_address": "${var.alert_email}"}
        or channel.get("count") != '${var.alert_email == "" ? 0 : 1}'
    ):
        problems.append("the notification channel must e-mail var.alert_email (none when it is empty)")
    if "for channel in google_monitoring_notification_channel.email" not in str(module.locals.get("channels")):
        problems.append("local.channels must be the e-mail channel's")
    if ("google_monitoring_dashboard", "cscx") not in resources:
        problems.append("there is no dashboard")
    if "StreamHandler(sys.stdout)" not in (ROOT / "common" / "log.py").read_text(encoding="utf-8"):
        problems.append(f"the filters read the code's lines in {STDOUT_LOG}: common/log.py must write to stdout")
    return problems
