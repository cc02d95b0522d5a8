"""The API fuzz outside pytest: more requests, another seed, or without HTTP to see what it costs.

    python benchmarks/fuzz_api.py                          # 10,240 requests over HTTP
    python benchmarks/fuzz_api.py --requests 50000 --seed 7 --report failing.json
    python benchmarks/fuzz_api.py --via handle             # LocalApi.handle: no sockets, no HTTP

It stages what ``tests/security/test_api_fuzz.py`` stages (a local cloud, a model in production, a
candidate waiting for a person), sends the same kind of requests, prints the summary, every
distinct failing request with the exception its function logged, and whether the fuzz changed
the release state. The exit status is 1 if anything failed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests package, when run as a script

from tests.e2e.conftest import start_demo  # noqa: E402
from tests.security.harness import (  # noqa: E402
    SERVER_ERROR,
    as_json,
    describe,
    find_causes,
    fuzz,
    release_state,
    send,
    stage,
    state_changes,
    through_handle,
)
from tests.security.strategies import targets  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=10_240)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--via", choices=["http", "handle"], default="http")
    parser.add_argument("--report", type=Path, help="write the failing requests here, as JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as work:
        started = time.monotonic()
        cloud, demo = start_demo(Path(work))
        try:
            world = stage(demo)
            print(f"staged in {time.monotonic() - started:.0f} s", flush=True)
            per_target = math.ceil(args.requests / len(targets(world)))
            sender = send if args.via == "http" else through_handle(cloud.api)
            before = release_state(demo.target)
            started = time.monotonic()
            tally = fuzz(world, per_target, args.seed, sender)
            wall = time.monotonic() - started
            changes = state_changes(before, release_state(demo.target))
            find_causes(world, tally.failing(SERVER_ERROR), cloud.host.logs_dir)
        finally:
            cloud.stop()

    print(f"{tally.summary(len(world.routes), wall)} (via {args.via})")
    print("\n".join(tally.per_target()))
    print(describe(tally.failures.values()) or "no failing requests")
    print("\n".join(changes) or "no change of state")
    if args.report:
        args.report.write_text(json.dumps([as_json(f) for f in tally.failures.values()], indent=2))
    return 1 if tally.failures or changes else 0


if __name__ == "__main__":
    sys.exit(main())
