"""Per-file test seconds for CI's shards (tests/ci_durations.json), from pytest ``--durations=0`` logs.

    python scripts/ci_durations.py ci-log.txt [more logs...] > tests/ci_durations.json

Setup, call and teardown of every test are summed per file; with several logs (the SQLite and the
PostgreSQL pass) a file keeps the largest sum. The figures only need to be roughly right: they
decide which shard a file goes to (tests/conftest.py), never whether a test passes.
"""

from __future__ import annotations

import json
import re
import sys

LINE = re.compile(r"^(\d+(?:\.\d+)?)s (?:setup|call|teardown)\s+(\S+?)::")


def main(paths: list[str]) -> None:
    best: dict[str, float] = {}
    for path in paths:
        sums: dict[str, float] = {}
        with open(path, encoding="utf-8", errors="replace") as log:
            for line in log:
                if match := LINE.match(line):
                    sums[match.group(2)] = sums.get(match.group(2), 0.0) + float(match.group(1))
        for name, seconds in sums.items():
            best[name] = max(best.get(name, 0.0), seconds)
    json.dump({name: round(best[name], 1) for name in sorted(best)}, sys.stdout, indent=0)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
