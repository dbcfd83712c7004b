#!/usr/bin/env python3
"""Check Grafana dashboards against docs/METRICS.md and a live Prometheus (standard library only).

For every dashboard JSON:
  * structure: Grafana 10+ schema (schemaVersion >= 36), unique dashboard uids, unique panel ids,
    a grid position, a Prometheus data source given by the ${datasource} variable (or the fixed
    uid "prometheus") on every panel and target, unique refIds, no empty expression;
  * names: every metric an expression uses is in docs/METRICS.md (histograms as _bucket, _sum,
    _count), in pending-metrics.json, or one of Prometheus' own (up); every label an expression
    matches or groups by belongs to one of its metrics (or is job, instance, le);
  * live data: template variables are substituted ($__rate_interval -> 30s, $__interval,
    $__range, and each dashboard variable -> its "All" value or its current value), then every
    target expression is sent to Prometheus' /api/v1/query. A target fails when the query is
    invalid, returns no series, returns only NaN, or when a label its legend shows is missing
    from a series. Every metric it uses must have series of its own too, so `... or vector(0)`
    cannot hide a missing metric. Query variables (label_values) must find values.

A metric from pending-metrics.json that is neither documented nor exported yet makes its
panels PENDING instead of failed (CHECK_DASHBOARDS_STRICT=1 fails them). Prints a table of
panel -> series count and exits 1 on any failure.
"""

import argparse
import json
import math
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

BUILTIN_METRICS = {"up": set(), "scrape_duration_seconds": set(), "scrape_samples_scraped": set()}
ALWAYS_LABELS = {"job", "instance", "__name__"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
DATASOURCE_UIDS = {"${datasource}", "$datasource", "prometheus"}
MIN_SCHEMA_VERSION = 36  # Grafana 9.4+; what Grafana 10 writes is 37..39

# PromQL words that are not metric names when they are not followed by "(".
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
            "and", "or", "unless", "atan2", "inf", "nan", "start", "end"}


# --- docs/METRICS.md ---------------------------------------------------------------------


def load_documented(path):
    """{series name: set of labels} from the tables of docs/METRICS.md."""
    series = {}
    row = re.compile(r"^\|\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)`\s*\|\s*([a-z]+)\s*\|([^|]*)\|")
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = row.match(line)
            if not m:
                continue
            name, kind, label_text = m.group(1), m.group(2), m.group(3)
            labels = set(re.findall(r"`([a-zA-Z_][a-zA-Z0-9_]*)`", re.sub(r"\([^)]*\)", "", label_text)))
            if kind == "histogram":
                series[name + "_bucket"] = labels | {"le"}
                series[name + "_sum"] = set(labels)
                series[name + "_count"] = set(labels)
            else:
                series[name] = labels
    return series


def load_pending(path):
    if not path or not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    pending = {}
    for name, spec in data.get("metrics", {}).items():
        labels = set(spec.get("labels", []))
        if spec.get("type") == "histogram":
            pending[name + "_bucket"] = labels | {"le"}
            pending[name + "_sum"] = set(labels)
            pending[name + "_count"] = set(labels)
        else:
            pending[name] = labels
    return pending


# --- PromQL, just enough -----------------------------------------------------------------


def strip_strings(expr):
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)


def metric_names(expr):
    text = strip_strings(expr)
    text = re.sub(r"\{[^}]*\}", " ", text)                       # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)                      # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for m in re.finditer(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in KEYWORDS:
            continue
        names.add(word)
    # A selector without a name: {__name__="x"}
    for m in re.finditer(r'__name__\s*=\s*"([^"]+)"', expr):
        names.add(m.group(1))
    return names


def matcher_labels(expr):
    labels = set()
    for block in re.findall(r"\{([^}]*)\}", re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)):
        labels.update(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", block))
    return labels


def grouping_labels(expr):
    labels = set()
    for block in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", strip_strings(expr)):
        labels.update(x.strip() for x in block.split(",") if x.strip())
    return labels


# --- Grafana variables -------------------------------------------------------------------


def variable_values(dashboard, overrides):
    values = {}
    for var in dashboard.get("templating", {}).get("list", []):
        name = var.get("name")
        if not name:
            continue
        if name in overrides:
            values[name] = overrides[name]
        elif var.get("type") == "datasource":
            values[name] = var.get("current", {}).get("value") or "prometheus"
        elif var.get("includeAll") and var.get("allValue"):
            values[name] = var["allValue"]
        elif var.get("includeAll") and var.get("multi"):
            values[name] = ".*"
        else:
            current = var.get("current", {}).get("value")
            if isinstance(current, list):
                current = "|".join(current) if len(current) != 1 else current[0]
            if current in (None, "", "$__all"):
                current = ".*"
            values[name] = str(current)
    return values


def substitute(expr, builtins, variables):
    names = dict(builtins)
    names.update(variables)

    def value(name, whole):
        return names[name] if name in names else whole

    # ${name}, ${name:format}, [[name]], $name — longest names first so $__range_s beats $__range.
    expr = re.sub(r"\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}", lambda m: value(m.group(1), m.group(0)), expr)
    expr = re.sub(r"\[\[([A-Za-z0-9_]+)(?::[^\]]*)?\]\]", lambda m: value(m.group(1), m.group(0)), expr)
    for name in sorted(names, key=len, reverse=True):
        expr = re.sub(r"\$" + re.escape(name) + r"(?![A-Za-z0-9_])", lambda _m, n=name: names[n], expr)
    return expr


# --- Prometheus ----------------------------------------------------------------------------


class Prometheus:
    def __init__(self, url, at):
        self.url, self.at = url.rstrip("/"), at

    def query(self, expr):
        form = {"query": expr}
        if self.at:
            form["time"] = self.at
        data = urllib.parse.urlencode(form).encode()
        request = urllib.request.Request(self.url + "/api/v1/query", data=data,
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            try:
                body = json.load(error)
            except ValueError:
                return None, f"HTTP {error.code}"
        except (OSError, ValueError) as error:
            return None, f"request failed: {error}"
        if body.get("status") != "success":
            return None, f"{body.get('errorType', 'error')}: {body.get('error', body)}"
        data = body["data"]
        if data["resultType"] in ("vector", "matrix"):
            return data["result"], None
        # scalar or string: one value
        return [{"metric": {}, "value": data["result"]}], None


def is_nan(series):
    value = series.get("value")
    if value is None:
        return False
    try:
        return math.isnan(float(value[1]))
    except (TypeError, ValueError):
        return False


# --- the check -----------------------------------------------------------------------------


class Report:
    def __init__(self, strict):
        self.strict = strict
        self.rows = []
        self.failures = []
        self.warnings = []
        self.pending = []

    def fail(self, where, message):
        self.failures.append(f"{where}: {message}")

    def warn(self, where, message):
        self.warnings.append(f"{where}: {message}")


def walk_panels(panels):
    for panel in panels or []:
        yield panel
        if panel.get("type") == "row":
            yield from walk_panels(panel.get("panels"))


def datasource_uid(ds):
    if isinstance(ds, dict):
        return ds.get("uid")
    return ds  # a name or a variable string (older schema)


def check_structure(path, dashboard, report, seen_uids):
    where = os.path.basename(path)
    uid = dashboard.get("uid")
    if not uid:
        report.fail(where, "dashboard has no uid")
    elif uid in seen_uids:
        report.fail(where, f"dashboard uid {uid!r} also used by {seen_uids[uid]}")
    else:
        seen_uids[uid] = where
    if not dashboard.get("title"):
        report.fail(where, "dashboard has no title")
    schema = dashboard.get("schemaVersion")
    if not isinstance(schema, int) or schema < MIN_SCHEMA_VERSION:
        report.fail(where, f"schemaVersion {schema!r} is older than Grafana 10's (>= {MIN_SCHEMA_VERSION})")
    variables = [v.get("name") for v in dashboard.get("templating", {}).get("list", [])]
    if len(variables) != len(set(variables)):
        report.fail(where, f"duplicate template variables: {variables}")
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "datasource" and var.get("query") != "prometheus":
            report.fail(where, f"data source variable {var.get('name')!r} is not of type prometheus")
    ids = {}
    panels = list(walk_panels(dashboard.get("panels")))
    if not panels:
        report.fail(where, "dashboard has no panels")
    for panel in panels:
        title = panel.get("title") or f"panel {panel.get('id')}"
        pwhere = f"{where} / {title}"
        pid = panel.get("id")
        if not isinstance(pid, int):
            report.fail(pwhere, "panel has no integer id")
        elif pid in ids:
            report.fail(pwhere, f"panel id {pid} also used by {ids[pid]!r}")
        else:
            ids[pid] = title
        grid = panel.get("gridPos") or {}
        if not all(isinstance(grid.get(k), int) for k in ("h", "w", "x", "y")) or grid.get("x", 0) + grid.get("w", 0) > 24:
            report.fail(pwhere, f"bad gridPos {grid}")
        if panel.get("type") == "row":
            continue
        if not panel.get("type"):
            report.fail(pwhere, "panel has no type")
        if not panel.get("title"):
            report.fail(pwhere, "panel has no title")
        if datasource_uid(panel.get("datasource")) not in DATASOURCE_UIDS:
            report.fail(pwhere, f"panel data source {panel.get('datasource')!r} is neither ${{datasource}} nor uid prometheus")
        targets = panel.get("targets") or []
        if not targets:
            report.fail(pwhere, "panel has no targets")
        refs = [t.get("refId") for t in targets]
        if None in refs or len(refs) != len(set(refs)):
            report.fail(pwhere, f"missing or duplicate refIds {refs}")
        for target in targets:
            if not (target.get("expr") or "").strip():
                report.fail(pwhere, f"target {target.get('refId')} has no expression")
            ds = target.get("datasource")
            if ds is not None and datasource_uid(ds) not in DATASOURCE_UIDS:
                report.fail(pwhere, f"target {target.get('refId')} data source {ds!r} is neither ${{datasource}} nor uid prometheus")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dashboards", nargs="+")
    parser.add_argument("--prometheus", help="base URL; without it only the static checks run")
    parser.add_argument("--metrics-doc", required=True)
    parser.add_argument("--pending", help="pending-metrics.json")
    parser.add_argument("--time", help="evaluation time (Unix seconds) for every query; default now")
    parser.add_argument("--rate-interval", default="30s")
    parser.add_argument("--interval", default="15s")
    parser.add_argument("--range", default="5m", help="what $__range stands for")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="value of a dashboard variable (default: its All value or current value)")
    args = parser.parse_args()
    strict = os.environ.get("CHECK_DASHBOARDS_STRICT", "0") == "1"
    report = Report(strict)

    documented = load_documented(args.metrics_doc)
    if not documented:
        sys.exit(f"check: no metric found in {args.metrics_doc}")
    pending_spec = load_pending(args.pending)
    known = dict(BUILTIN_METRICS)
    known.update(pending_spec)
    known.update(documented)  # the documentation wins over a pending entry

    range_seconds = parse_duration(args.range)
    interval_seconds = parse_duration(args.interval)
    builtins = {
        "__rate_interval": args.rate_interval,
        "__interval": args.interval,
        "__interval_ms": str(int(interval_seconds * 1000)),
        "__range": args.range,
        "__range_s": str(int(range_seconds)),
        "__range_ms": str(int(range_seconds * 1000)),
    }
    overrides = dict(v.split("=", 1) for v in args.var)
    prom = Prometheus(args.prometheus, args.time) if args.prometheus else None

    exported = set()
    if prom:
        result, error = prom.query('group by (__name__) ({__name__=~"cashgrid_.+"})')
        if error:
            report.fail("prometheus", f"cannot list exported metrics: {error}")
        else:
            exported = {s["metric"]["__name__"] for s in result}
        if not exported:
            report.fail("prometheus", "no cashgrid_* series at all: is the scrape target up?")

    metric_has_data = {}

    def metric_status(name):
        """'ok', 'pending' or 'missing' for one series name."""
        if name not in metric_has_data:
            result, error = prom.query(f'count({{__name__="{name}"}})')
            metric_has_data[name] = bool(result) and not error
        if metric_has_data[name]:
            return "ok"
        if name in pending_spec and name not in documented:
            return "pending"
        return "missing"

    used_metrics = set()
    seen_uids = {}
    for path in args.dashboards:
        with open(path, encoding="utf-8") as f:
            try:
                dashboard = json.load(f)
            except ValueError as error:
                report.fail(os.path.basename(path), f"invalid JSON: {error}")
                continue
        check_structure(path, dashboard, report, seen_uids)
        board = dashboard.get("uid") or os.path.basename(path)
        variables = variable_values(dashboard, overrides)

        # Query variables: label_values(selector, label) must find values.
        for var in dashboard.get("templating", {}).get("list", []):
            if var.get("type") != "query":
                continue
            definition = var.get("query")
            if isinstance(definition, dict):
                definition = definition.get("query")
            definition = definition or var.get("definition") or ""
            m = re.match(r"^\s*label_values\(\s*(.+?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$", definition)
            where = f"{board} / variable {var.get('name')}"
            if not m:
                report.fail(where, f"unsupported variable query {definition!r} (expected label_values(selector, label))")
                continue
            selector = substitute(m.group(1), builtins, {k: v for k, v in variables.items() if k != var.get("name")})
            for name in metric_names(selector):
                used_metrics.add(name)
                if name not in known:
                    report.fail(where, f"unknown metric {name}")
            if prom:
                result, error = prom.query(f"group by ({m.group(2)}) ({selector})")
                count = len([s for s in result or [] if m.group(2) in s["metric"]])
                report.rows.append((board, f"variable ${var.get('name')}", "-", count,
                                    "ok" if count and not error else "FAIL"))
                if error:
                    report.fail(where, f"invalid: {error}")
                elif not count:
                    report.fail(where, f"label_values({selector}, {m.group(2)}) found no value")

        for panel in walk_panels(dashboard.get("panels")):
            if panel.get("type") == "row":
                continue
            title = panel.get("title") or f"panel {panel.get('id')}"
            for target in panel.get("targets") or []:
                raw = target.get("expr") or ""
                ref = target.get("refId", "?")
                where = f"{board} / {title} / {ref}"
                expr = substitute(raw, builtins, variables)
                if "$" in expr or "[[" in expr:
                    report.fail(where, f"unresolved variable in {expr}")
                    report.rows.append((board, title, ref, 0, "FAIL"))
                    continue
                names = metric_names(expr)
                used_metrics.update(names)
                allowed_labels = set(ALWAYS_LABELS)
                for name in sorted(names):
                    if name not in known:
                        hint = ""
                        for suffix in HISTOGRAM_SUFFIXES:
                            if name + suffix in documented:
                                hint = f" (a histogram: use {name}_bucket, _sum or _count)"
                        report.fail(where, f"metric {name} is not in {os.path.basename(args.metrics_doc)}{hint}")
                    else:
                        allowed_labels |= known[name]
                for label in sorted((matcher_labels(expr) | grouping_labels(expr)) - allowed_labels):
                    report.fail(where, f"label {label!r} belongs to none of {sorted(names)}")
                if not prom:
                    continue
                result, error = prom.query(expr)
                statuses = {name: metric_status(name) for name in names}
                count = len(result or [])
                if error:
                    status = "FAIL"
                    report.fail(where, f"invalid query: {error}\n    {expr}")
                elif any(s == "missing" for s in statuses.values()):
                    status = "FAIL"
                    missing = sorted(n for n, s in statuses.items() if s == "missing")
                    report.fail(where, f"no series for {', '.join(missing)} in Prometheus")
                elif any(s == "pending" for s in statuses.values()):
                    status = "PENDING"
                    pend = sorted(n for n, s in statuses.items() if s == "pending")
                    report.pending.append(f"{where}: waits for {', '.join(pend)}")
                elif not count:
                    status = "FAIL"
                    report.fail(where, f"no data\n    {expr}")
                elif all(is_nan(s) for s in result):
                    status = "FAIL"
                    report.fail(where, f"only NaN (no observations in the window)\n    {expr}")
                else:
                    status = "ok"
                    legend_labels = set(re.findall(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}",
                                                   target.get("legendFormat") or ""))
                    for label in sorted(legend_labels):
                        lacking = [s for s in result if label not in s["metric"]]
                        if lacking:
                            status = "FAIL"
                            report.fail(where, f"legend shows {{{{{label}}}}} but {len(lacking)} of {count} "
                                               f"series have no label {label!r}")
                report.rows.append((board, title, ref, count, status))

    # Coverage, both ways (warnings).
    doc_bases = set()
    for name in documented:
        base = name
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix) and name[: -len(suffix)] + "_bucket" in documented:
                base = name[: -len(suffix)]
        doc_bases.add(base)
    for base in sorted(doc_bases):
        family = {base} | {base + s for s in HISTOGRAM_SUFFIXES}
        if not family & used_metrics:
            report.warn("coverage", f"{base} (docs/METRICS.md) is on no dashboard")
    if prom:
        for name in sorted(exported - set(documented)):
            report.warn("docs", f"{name} is exported but not in docs/METRICS.md")
        for name in sorted(set(documented) - exported):
            report.warn("load", f"{name} is documented but had no series after the load")

    print_table(report.rows)
    for line in report.pending:
        print(f"PENDING {line}")
    for line in report.warnings:
        print(f"warning {line}")
    for line in report.failures:
        print(f"FAIL    {line}")
    ok = sum(1 for r in report.rows if r[4] == "ok")
    print(f"check: {len(report.rows)} queries: {ok} with data, {len(report.pending)} pending, "
          f"{len(report.failures)} failures, {len(report.warnings)} warnings")
    if report.failures or (strict and (report.pending or report.warnings)):
        if strict and not report.failures:
            print("check: CHECK_DASHBOARDS_STRICT=1 and there are pending panels or warnings")
        return 1
    return 0


def parse_duration(text):
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", text):
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800,
                                  "y": 31536000}[unit]
    if not total:
        raise SystemExit(f"check: cannot parse duration {text!r}")
    return total


def print_table(rows):
    if not rows:
        return
    headers = ("dashboard", "panel", "ref", "series", "status")
    widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(5)]
    widths[1] = min(widths[1], 52)
    line = "  ".join("{:<%d}" % w if i != 3 else "{:>%d}" % w for i, w in enumerate(widths))
    print(line.format(*headers))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        cells = list(row)
        cells[1] = cells[1] if len(cells[1]) <= widths[1] else cells[1][: widths[1] - 1] + "…"
        print(line.format(*[str(c) for c in cells]))


if __name__ == "__main__":
    sys.exit(main())
