"""The ledger part of a scripts/bench.sh report: transfers per second at the peak of each ledger
scenario, p50/p99 per request at 80 % of it, CPU per transfer, and the ratios to the same run's
ceilings (the trivial HTTP handler's requests/s, PostgreSQL's rows/s).

    python3 scripts/bench/ledger_report.py OUT_DIR BACKEND...
"""

import json
import sys
from pathlib import Path

# Transfers per request of each scenario (load-tests/src/ledger.rs: a batch has 1,000).
SCENARIOS = [
    ("ledgertransfers", "single transfers, random accounts", 1),
    ("ledgerhotaccount", "single transfers, one hot account", 1),
    ("ledgerbatch", "batches of 1,000, random accounts", 1000),
]


def load(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def cpu(path):
    figures = {}
    try:
        for line in Path(path).read_text().splitlines():
            name, value = line.split()
            figures[name] = float(value)
    except (OSError, ValueError):
        pass
    return figures


def ceilings(out):
    """The run's ceilings: the trivial handler's requests/s and PostgreSQL's best rows/s (0 when
    not measured)."""
    http = load(out / "ceiling-http.json") or {}
    pg_modes = []
    for line in (out / "ceiling-pg.jsonl").read_text().splitlines() if (out / "ceiling-pg.jsonl").exists() else []:
        try:
            pg_modes.append(json.loads(line))
        except ValueError:
            pass
    pg_ceiling = max((mode.get("rows_per_second", 0.0) for mode in pg_modes), default=0.0)
    return http.get("http_per_second", 0.0), pg_ceiling


def main():
    out = Path(sys.argv[1])
    backends = sys.argv[2:]
    http_ceiling, pg_ceiling = ceilings(out)
    print("## Ledger")
    print()
    print(f"Ceilings of this run: trivial handler {http_ceiling:,.0f} requests/s; PostgreSQL "
          f"{pg_ceiling:,.0f} rows/s (best insert mode).")
    print()
    print("| backend | scenario | transfers/s at peak (users) | / PG rows/s | requests/s / HTTP ceiling "
          "| p50 / p99 at 80 % (ms) | CPU ms per transfer (server + PostgreSQL) | failures |")
    print("|---|---|---|---|---|---|---|---|")
    for backend in backends:
        for scenario, what, per_request in SCENARIOS:
            peak = load(out / backend / f"{scenario}-peak.json")
            p80 = load(out / backend / f"{scenario}-p80.json")
            if peak is None:
                continue
            transfers = peak["http_per_second"] * per_request
            figures = cpu(out / backend / f"{scenario}-peak.cpu-all")
            done = peak["http_requests"] * per_request
            cpu_ms = 1000 * (figures.get("server", 0.0) + figures.get("postgres", 0.0)) / max(done, 1)
            latency = "–"
            if p80 and p80.get("requests"):
                request = max(p80["requests"], key=lambda item: item["timing"]["count"])
                latency = f"{request['timing']['p50_us'] / 1000:.1f} / {request['timing']['p99_us'] / 1000:.1f}"
            pg_ratio = f"{transfers / pg_ceiling:.2f}" if pg_ceiling else "–"
            http_ratio = f"{peak['http_per_second'] / http_ceiling:.2f}" if http_ceiling else "–"
            failures = peak["http_failures"] + (p80["http_failures"] if p80 else 0)
            print(f"| {backend} | {what} | {transfers:,.0f} ({peak['users']}) | {pg_ratio} | {http_ratio} "
                  f"| {latency} | {cpu_ms:.3f} | {failures} |")
    print()


if __name__ == "__main__":
    main()
