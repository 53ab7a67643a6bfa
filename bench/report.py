"""The rows of docs/PERFORMANCE.md's table, in Markdown, from the JSON in bench/results/.

    python bench/report.py [--quick]

Reads accept.json, deliver.json, status.json, growth.json, scaleout.json (their
``_quick`` versions with ``--quick``) and prints one table row per measure of issue 14 that
has figures; a missing file is said so. It measures nothing itself.
"""

from __future__ import annotations

import argparse
import itertools
import json
from typing import Any

import _harness as h


def _load(name: str, quick: bool) -> dict[str, Any] | None:
    path = h.RESULTS / f"{name}{'_quick' if quick else ''}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _wp(worker_processes: int) -> str:
    """How the row's server ran, if not as one process."""
    if not worker_processes:
        return ""
    return f", `--worker-processes {worker_processes}`"


def _when(data: dict[str, Any]) -> str:
    return f"{data['at']}, load {data['load_average_at_start'][0]}"


def rows(quick: bool) -> list[str]:
    out: list[str] = []
    dbs = ("sqlite", "postgresql")
    deliver = _load("deliver", quick)
    if deliver:
        for wp, latency in itertools.product(
            deliver.get("worker_processes", [0]), deliver["latencies_ms"]
        ):
            key = h.mode_key(f"{latency:g}ms", wp)
            cells = []
            for db in dbs:
                if db in deliver and key in deliver[db]:
                    e = deliver[db][key]
                    cell = (
                        f"{db}: {e['tidings']['per_s']} / {e['raw_loop']['per_s']} msg/s = "
                        f"**{e['ratio_vs_raw']}**"
                    )
                    if "times_django_anymail" in e:
                        cell += f", **{e['times_django_anymail']}×** django-anymail"
                    cells.append(cell)
            if latency == max(deliver["latencies_ms"]) and "django_anymail" in deliver:
                cells.append(f"django-anymail {deliver['django_anymail']['per_s']} msg/s")
            out.append(
                f"| deliver, sandbox +{latency:g} ms: Tidings / raw loop{_wp(wp)} "
                f"({deliver['messages']} messages) | {'; '.join(cells)} | {_when(deliver)} |"
            )
    accept = _load("accept", quick)
    if accept:
        bare = accept["bare_endpoint"]
        for wp, mode in itertools.product(accept.get("worker_processes", [0]), ("busy", "idle")):
            cells = []
            for db in dbs:
                if db in accept and h.mode_key(f"dispatcher_{mode}", wp) in accept[db]:
                    e = accept[db][h.mode_key(f"dispatcher_{mode}", wp)]
                    cells.append(
                        f"{db}: {e['per_s']} req/s (p50 {e['p50_ms']} / p99 {e['p99_ms']} ms) "
                        f"= **{e['ratio_vs_bare']}**"
                    )
            cells.append(f"bare endpoint {bare['per_s']} req/s (p50 {bare['p50_ms']} ms)")
            out.append(
                f"| `/send` accept rate, dispatcher {mode}{_wp(wp)} "
                f"({accept['requests']} requests) | "
                f"{'; '.join(cells)} | {_when(accept)} |"
            )
    growth = _load("growth", quick)
    if growth:
        cells = []
        for db in dbs:
            if db in growth:
                steps = growth[db]["steps"]
                rss = " → ".join(f"{s['server_rss_mib']}" for s in steps)
                rates = " → ".join(f"{s['per_s']}" for s in steps)
                levels = " → ".join(f"{s['queued']:,}" for s in steps)
                per = growth[db]["bytes_per_queued_message"]
                cells.append(
                    f"{db}: queued {levels}: RSS {rss} MiB "
                    f"(**{per:.0f} bytes** per message between the levels); "
                    f"burst of {growth['burst']} {rates} msg/s "
                    f"(last ÷ first level **{steps[-1]['ratio_vs_first_level']}**)"
                )
        out.append(f"| growth | {'; '.join(cells)} | {_when(growth)} |")
    status = _load("status", quick)
    if status:
        cells = []
        for db in dbs:
            if db in status:
                e = status[db]
                cells.append(
                    f"{db}: **{e['tidings']['per_s']}/s** (bare endpoint "
                    f"{e['bare_endpoint']['per_s']}/s, **{e['ratio_vs_bare']}**)"
                )
        out.append(
            "| signed webhooks ingested (verified, token once, matched, status updated), "
            f"32 connections | {'; '.join(cells)} | {_when(status)} |"
        )
        if "events_api_settle" in status:
            s = status["events_api_settle"]
            out.append(
                f"| Events API calls to settle {s['messages']} messages (polling alone, SQLite) "
                f"| **{s['events_api_requests']}** (fewest pages {s['min_pages']}; "
                f"settled in {s['settle_s']} s) | {_when(status)} |"
            )
    scale = _load("scaleout", quick)
    if scale:
        cells = [
            f"{k} worker{'s' if k != '1' else ''}: {r['per_s']} msg/s (**{r['ratio_vs_fewest']}**)"
            for k, r in scale["workers"].items()
        ]
        out.append(
            f"| scale-out, PostgreSQL, sandbox +{scale['latency_ms']:g} ms "
            f"({scale['messages']} messages) | {'; '.join(cells)} | {_when(scale)} |"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="read the *_quick.json files")
    parser.add_argument("--heading", default="before", help="the figures' column heading")
    args = parser.parse_args()
    print(f"| measure | {args.heading} | run (UTC end; 1-min load at its start) |")
    print("|---|---|---|")
    for row in rows(args.quick):
        print(row)


if __name__ == "__main__":
    main()
