"""``python -m clinishare_analytics [--from first|last|next|OFFSET|TIME] [--follow] [--reset] [--out DIR]``"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from clinishare_analytics.consumer import parse_offset, run
from clinishare_analytics.settings import AnalyticsSettings
from clinishare_shared.logging import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clinishare_analytics",
                                     description="Replay the Clinishare event stream into daily counts "
                                     "(CSV) and a chart of shares per day (PNG).")
    parser.add_argument("--from", dest="start", default="first",
                        help="where a first run starts: first (default), last, next, an offset, or an ISO "
                             "time like 2026-03-01T00:00:00Z; later runs resume where the last one stopped")
    parser.add_argument("--follow", action="store_true", help="keep reading new events (Ctrl-C to stop)")
    parser.add_argument("--reset", action="store_true", help="forget saved progress and counts, start at --from")
    parser.add_argument("--out", type=Path, help="output folder (ANALYTICS_OUT_DIR, default var/analytics)")
    parser.add_argument("--stream", help="stream name (ANALYTICS_STREAM / EVENTS_STREAM)")
    parser.add_argument("--limit", type=int, help="read at most this many events in this run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in {"out_dir": args.out, "stream": args.stream}.items() if v is not None}
    try:
        settings = AnalyticsSettings(**overrides)
    except ValueError as exc:  # pydantic's ValidationError is one, and so is UnknownSettings
        print(f"invalid settings: {exc}", file=sys.stderr)
        return 2
    configure_logging(service="analytics", level=settings.log_level)
    try:
        start = parse_offset(args.start)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        result = asyncio.run(run(settings, start=start, follow=args.follow, reset=args.reset,
                                 progress=not args.no_progress, limit=args.limit))
    except KeyboardInterrupt:
        return 130
    for path in result.files:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
