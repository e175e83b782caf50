"""`make test` here against `make test` at a reference commit, alternated in one run (issue #12).

Issue #12 asks for `make test` in at most half the time it took when the issue was filed. The
suite's time on these shared machines moves by a third from one day to the next, so a figure
from another day says little: this script checks the reference commit out into a temporary
git worktree (its own venv, set up by its own `make dev`), then runs `make test` there and in
this checkout in turns, and prints, for each, the median wall time, the tests that ran, the
wall time per test, and the machine's busy and idle core-seconds (from /proc/stat). The ratio
of the medians is the figure the issue's goal is about.

    .venv/bin/python benchmarks/suite_time.py                 # against the issue's start
    .venv/bin/python benchmarks/suite_time.py --base HEAD~5 --rounds 3

The default base is 819ccd5, the last commit before work on #12 began (591 tests, no xdist).
A round takes both suites' time (about 4.5 minutes here). The worktree lives beside this
checkout, where the tests find ../shared, and is removed at the end.
Nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ISSUE_START = "819ccd5"
SUMMARY = re.compile(r"(\d+) passed(?:, (\d+) skipped)?.* in ([\d.]+)s")


@dataclass
class Run:
    wall: float
    pytest: float
    passed: int
    skipped: int
    busy: float  # core-seconds, the whole machine
    idle: float


def cpu_times() -> tuple[float, float]:
    """(busy, idle) core-seconds of the whole machine since boot; zeros where /proc/stat is absent."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / tick, idle / tick


def make_test(checkout: Path) -> Run:
    busy0, idle0 = cpu_times()
    started = time.perf_counter()
    done = subprocess.run(["make", "test"], cwd=checkout, capture_output=True, text=True)
    wall = time.perf_counter() - started
    busy1, idle1 = cpu_times()
    found = SUMMARY.findall(done.stdout)
    if done.returncode != 0 or not found:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise SystemExit(f"make test failed in {checkout} (exit {done.returncode}):\n{tail}")
    passed, skipped, seconds = found[-1]
    return Run(wall, float(seconds), int(passed), int(skipped or 0), busy1 - busy0, idle1 - idle0)


def report(label: str, runs: list[Run]) -> float:
    wall = statistics.median(r.wall for r in runs)
    busy, idle = statistics.median(r.busy for r in runs), statistics.median(r.idle for r in runs)
    tests = runs[-1].passed + runs[-1].skipped
    print(
        f"{label:<22} make test {wall:6.1f} s (runs: {', '.join(f'{r.wall:.1f}' for r in runs)}); "
        f"pytest {statistics.median(r.pytest for r in runs):6.1f} s; {tests} tests "
        f"({runs[-1].passed} passed), {wall / tests * 1000:5.1f} ms a test; "
        f"machine busy {busy:6.1f} core-s, idle {idle:6.1f}"
    )
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", default=ISSUE_START, help="the reference commit (default: #12's start)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each suite, alternated")
    args = parser.parse_args()
    # Beside this checkout: the tests read ../shared (fixtures, wire facts) from the checkout's parent.
    base = Path(tempfile.mkdtemp(prefix=".finsync-suite-base-", dir=ROOT.parent))
    subprocess.run(["git", "worktree", "add", "--detach", str(base), args.base], cwd=ROOT, check=True)
    try:
        print(f"setting up {args.base}'s venv (make dev) ...", flush=True)
        subprocess.run(["make", "dev"], cwd=base, check=True, capture_output=True)
        runs: dict[str, list[Run]] = {"base": [], "here": []}
        for n in range(args.rounds):
            for name, checkout in (("base", base), ("here", ROOT)):
                runs[name].append(make_test(checkout))
                print(f"round {n + 1} {name}: {runs[name][-1].wall:.1f} s", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
        shutil.rmtree(base, ignore_errors=True)
    print(f"\n{os.cpu_count()} cores, {args.rounds} alternated rounds")
    before = report(f"base {args.base}", runs["base"])
    after = report("this checkout", runs["here"])
    print(f"ratio (this checkout / base): {after / before:.2f}  (#12's goal: at most 0.50)")


if __name__ == "__main__":
    main()
