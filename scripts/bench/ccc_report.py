#!/usr/bin/env python3
"""The Crypto Capital part of a benchmark report: internal transfers over WebSockets
(load-tests/ccc-bench.sh's results in OUT/ccc), with the ratios to the same run's ceilings and
the issue's target scaled by them.

    python3 scripts/bench/ccc_report.py OUT
"""

import json
import pathlib
import sys

from ledger_report import ceilings

TARGET = 3000  # transfers/s at the ceilings of 2026-11-25
CEILINGS_THEN = (49_000, 59_000)  # trivial handler requests/s, PostgreSQL rows/s


def load(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def main():
    out = pathlib.Path(sys.argv[1])
    runs = sorted((out / "ccc").glob("sweep-u*.json"), key=lambda path: int(path.stem.split("-u")[1]))
    sweeps = [run for run in map(load, runs) if run]
    if not sweeps:
        return
    http, pg = ceilings(out)
    print()
    print("## Crypto Capital WebSocket API")
    print()
    print("| users | transfers/s | p50 / p99 (ms) | CPU ms per transfer (server + PostgreSQL) | failures |")
    print("|---|---|---|---|---|")
    for run in sweeps + [load(out / "ccc" / "p80.json") or {}]:
        if not run:
            continue
        label = f'{run["users"]} at 80 %' if run.get("rate") else str(run["users"])
        cpu = run.get("server_cpu_ms_per_transfer", 0) + run.get("pg_cpu_ms_per_transfer", 0)
        print(f'| {label} | {run["per_second"]:,.0f} | {run["p50_us"] / 1000:.1f} / {run["p99_us"] / 1000:.1f} | '
              f'{cpu:.3f} ({run.get("server_cpu_ms_per_transfer", 0)} + {run.get("pg_cpu_ms_per_transfer", 0)}) | '
              f'{run["failures"]} |')
    peak = max(run["per_second"] for run in sweeps)
    scaled = [TARGET * ceiling / then for ceiling, then in zip((http, pg), CEILINGS_THEN) if ceiling]
    if scaled:
        print()
        print(f"Peak {peak:,.0f} transfers/s; the target of {TARGET:,} scaled by this run's ceilings: "
              + " and ".join(f"{value:,.0f}" for value in scaled) + " (HTTP, PostgreSQL)"
              + (f"; {peak / pg:.3f} transfers per PostgreSQL ceiling row." if pg else "."))


if __name__ == "__main__":
    main()
