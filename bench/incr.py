"""INCR throughput of tickerd against redis-server's INCR, measured in the same run.

    python -m bench.incr [--requests N]

Starts its own tickerd (the sqlite store, in a temporary directory) and its own redis-server on
free ports, drives both with redis-benchmark in the same shapes, and prints requests per second
and the ratio tickerd / redis-server. Nothing here is a pass/fail threshold.
"""

from __future__ import annotations

import argparse
import csv
import io
import subprocess
import tempfile
from pathlib import Path

from tests.servers import RedisServer, Tickerd

# (label, clients, pipeline depth, requests)
SHAPES = [
    ("50 clients", 50, 1, 20_000),
    ("50 clients, pipeline 16", 50, 16, 100_000),
    ("1 client", 1, 1, 5_000),
]
COMMANDS = [("INCR users", ["INCR", "users"]), ("PING", ["PING"])]


def rps(port: int, clients: int, pipeline: int, requests: int, command: list[str]) -> float:
    """Requests per second that redis-benchmark measured for one shape."""
    options = ["-p", str(port), "-c", str(clients), "-P", str(pipeline), "-n", str(requests)]
    result = subprocess.run(
        ["redis-benchmark", *options, "--csv", *command],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    rows = list(csv.reader(io.StringIO(result.stdout)))
    return float(rows[-1][1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every request count")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-") as directory:
        root = Path(directory)
        (root / "tickerd").mkdir()
        (root / "redis").mkdir()
        tickerd = Tickerd(root / "tickerd").start()
        redis = RedisServer(root / "redis")
        try:
            print(f"{'command':<12} {'shape':<26} {'tickerd/s':>12} {'redis/s':>12} {'ratio':>7}")
            for name, command in COMMANDS:
                for label, clients, pipeline, requests in SHAPES:
                    count = max(100, int(requests * args.scale))
                    ours = rps(tickerd.port, clients, pipeline, count, command)
                    theirs = rps(redis.port, clients, pipeline, count, command)
                    print(
                        f"{name:<12} {label:<26} {ours:>12,.0f} {theirs:>12,.0f} "
                        f"{ours / theirs:>7.2f}"
                    )
        finally:
            tickerd.stop()
            redis.stop()


if __name__ == "__main__":
    main()
