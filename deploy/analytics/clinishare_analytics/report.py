"""What analytics teams get: two CSV files and a PNG chart, rewritten whole from the tally each time (so
they never disagree with the stored offset), and the tally itself, saved atomically."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from clinishare_analytics.tally import SHARE_TYPES, Tally

STATE = "state.json"
TYPE_CSV = "daily_event_counts.csv"
OFFICE_CSV = "daily_office_counts.csv"
SHARES_PNG = "shares_per_day.png"


def _atomic_write(path: Path, write: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        write(fh)  # type: ignore[operator]
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_tally(out_dir: Path) -> Tally | None:
    path = out_dir / STATE
    return Tally.from_json(json.loads(path.read_text())) if path.exists() else None


def save_tally(out_dir: Path, tally: Tally, *, stream: str) -> None:
    """One atomic write of the counts, the ids counted and the offset to resume from: a crash either
    keeps all three before this batch or all three after it, so a restart never counts twice."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(out_dir / STATE, lambda fh: json.dump({"stream": stream, **tally.to_json()}, fh))


def write_reports(out_dir: Path, tally: Tally) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)

    def types(fh: object) -> None:
        w = csv.writer(fh)  # type: ignore[arg-type]
        w.writerow(["day", "event_type", "count"])
        w.writerows(tally.type_rows())

    def offices(fh: object) -> None:
        w = csv.writer(fh)  # type: ignore[arg-type]
        w.writerow(["day", "office_id", "event_type", "count"])
        w.writerows(tally.office_rows())

    _atomic_write(out_dir / TYPE_CSV, types)
    _atomic_write(out_dir / OFFICE_CSV, offices)
    chart_shares(tally, out_dir / SHARES_PNG)
    return [out_dir / TYPE_CSV, out_dir / OFFICE_CSV, out_dir / SHARES_PNG]


def chart_shares(tally: Tally, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    per_day = tally.shares_per_day()
    days = sorted(per_day)
    fig, ax = plt.subplots(figsize=(max(7.0, 0.5 * len(days) + 5), 4), dpi=100)
    bottom = [0] * len(days)
    for share_type in SHARE_TYPES:
        values = [per_day[d].get(share_type, 0) for d in days]
        ax.bar(days, values, bottom=bottom, label=share_type)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_title("Shares per day")
    ax.set_xlabel("day (UTC)")
    ax.set_ylabel("shares")
    ax.yaxis.get_major_locator().set_params(integer=True)
    if days:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
        ax.tick_params(axis="x", labelrotation=45)
    else:
        ax.text(0.5, 0.5, "no shares yet", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, path)
