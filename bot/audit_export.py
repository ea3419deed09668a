"""`python -m bot audit`: the audit log on standard output, for a terminal, a SIEM or a file.

It reads the database the bot uses, while the bot runs: batches of short reads, so it never
holds a lock the bot waits on. Logs go to standard error, so the output is only entries.
"""

import argparse
import csv
import json
from datetime import datetime, timedelta
from typing import TextIO

from bot.config import parse_duration
from storage import audit
from storage.database import Database
from storage.models import utcnow

FORMATS = ("jsonl", "csv")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot audit",
        description="Print threadgate's audit log, oldest entry first.",
    )
    parser.add_argument(
        "--since",
        type=_age,
        default=None,
        metavar="AGE",
        help="only entries this recent: 30m, 12h, 7d (default: all)",
    )
    parser.add_argument("--format", choices=FORMATS, default="jsonl", help="default: jsonl")
    return parser


def _age(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age like 30m, 12h or 7d") from None


async def write(db: Database, out: TextIO, *, since: datetime | None, fmt: str) -> int:
    """Write the entries; returns how many."""
    written = 0
    writer = csv.DictWriter(out, fieldnames=audit.FIELDS) if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    async for entry in audit.export(db, since=since):
        row = entry.as_dict()
        if writer is not None:
            writer.writerow(row)
        else:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        written += 1
    out.flush()
    return written


def cutoff(age: timedelta | None) -> datetime | None:
    return utcnow() - age if age is not None else None
