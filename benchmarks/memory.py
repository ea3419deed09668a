"""Scenario 6: resident memory of each app after N threads, each app alone in its own process.

    uv run python -m benchmarks.memory bot|baseline|baseline-sdk [--threads 1000]

prints one JSON object. The fakes and the sender stay in this process; the app runs in a child
(benchmarks/process.py), so the RSS read from the child is the app's own.
"""

import argparse
import asyncio
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import psutil  # type: ignore[import-untyped]

from benchmarks.databases import migrate
from benchmarks.harness import ASKER, CHANNEL, in_threads, new_thread_ts, running_fakes
from benchmarks.process import APPS, AppName, app_process
from benchmarks.results import Memory

if TYPE_CHECKING:
    from benchmarks.harness import Endpoint, Fakes

IN_FLIGHT = 10  # mentions sent together; the next batch goes once they are all answered
WARMUP = 20
MB = 1024 * 1024


def _peak_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def _threads(endpoint: "Endpoint", fakes: "Fakes", count: int) -> None:
    for first in range(0, count, IN_FLIGHT):
        batch = [new_thread_ts() for _ in range(min(IN_FLIGHT, count - first))]
        await asyncio.gather(
            *(
                endpoint.post(
                    endpoint.requests.mention(text="hello", user=ASKER, channel=CHANNEL, ts=ts)
                )
                for ts in batch
            )
        )
        await fakes.wait_post(in_threads(set(batch)), count=len(batch))
        fakes.forget()


async def measure(app: AppName, *, fakes: "Fakes", threads: int, workdir: Path) -> Memory:
    """On a fresh SQLite file; the baselines never open it."""
    database_url = f"sqlite+aiosqlite:///{workdir / f'memory-{app}.db'}"
    if app == "bot":
        await migrate(database_url)
    async with app_process(app, fakes, database_url) as child:
        process = psutil.Process(child.pid)
        await _threads(child.endpoint, fakes, min(WARMUP, threads))
        start = process.memory_info().rss / MB
        await _threads(child.endpoint, fakes, threads)
        end = process.memory_info().rss / MB
        return Memory(app, threads, start, end, _peak_mb(child.pid))


async def _standalone(app: AppName, threads: int) -> Memory:
    with tempfile.TemporaryDirectory(prefix="threadgate-memory-") as workdir:
        async with running_fakes() as fakes:
            return await measure(app, fakes=fakes, threads=threads, workdir=Path(workdir))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    parser.add_argument("app", choices=APPS)
    parser.add_argument("--threads", type=int, default=1000)
    args = parser.parse_args(argv)
    result = asyncio.run(_standalone(args.app, args.threads))
    sys.stdout.write(json.dumps(asdict(result)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
