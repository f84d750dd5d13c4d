"""`bench/pool.py` here and at another commit, run in turns, with the ratio of their job cycles.

The pool bench's figure moves with whatever else the machine does (a shared host's stolen time
moved 94a4512's from 63 to 99 cycles/s within an hour here), so a figure is only worth comparing
with one taken in the minutes around it. This runs the two one after the other, `--pairs` times,
and prints each pair's ratio and their median: issue 12 asks for no more than 5 % below the code
before it (94a4512).

The other commit is checked out once under var/against/<commit> (a git worktree) with its own
virtualenv from its own pinned requirements (a few minutes, the first time).

    .venv/bin/python bench/pool_against.py [--commit 94a4512] [--pairs 3] [--here=--claim-each] [-- pool.py's options]

`--here` passes an option to this checkout's bench only (one the other commit's bench lacks): with
`--here=--claim-each` the workers here claim every job with a request of their own, as workers
did before completions could hand over the next job, for a like-for-like figure.
"""
import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CYCLES = re.compile(r"job cycles/s\s+([\d.]+)")
CPU = re.compile(r"CPU per cycle ms\s+server\s+([\d.]+)\s+PostgreSQL\s+([\d.]+)")
LIGHT = re.compile(r"light load .*?p50\s+([\d.]+)")


def checkout(commit: str) -> Path:
    sha = subprocess.run(["git", "rev-parse", "--short", commit], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    tree = ROOT / "var" / "against" / sha
    if not tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), sha], cwd=ROOT, check=True)
    venv = tree / ".venv"
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        wanted = [arg for name in ("requirements.txt", "requirements-dev.txt") if (tree / name).exists()
                  for arg in ("-r", str(tree / name))]
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *wanted], check=True)
    (tree / "var").mkdir(exist_ok=True)
    return tree


def cycles(tree: Path, options: list[str]) -> tuple[float, float, float | None]:
    """Job cycles a second, the server's and PostgreSQL's CPU milliseconds a cycle (time the host
    steals from this machine is in neither process's CPU time, so it moves less), and the light-load
    dispatch p50 from the POST in ms (None from a bench that does not print it)."""
    out = subprocess.run([str(tree / ".venv" / "bin" / "python"), "bench/pool.py", *options], cwd=tree,
                         check=True, capture_output=True, text=True).stdout
    found, cpu = CYCLES.search(out), CPU.search(out)
    if not found or not cpu:
        raise RuntimeError(f"no cycles or CPU figure in the bench's output:\n{out}")
    light = LIGHT.search(out)
    return float(found.group(1)), float(cpu.group(1)) + float(cpu.group(2)), float(light.group(1)) if light else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commit", default="94a4512", help="the code to compare with (default: before issue 12)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--here", action="append", default=[], help="an option for this checkout's bench only")
    parser.add_argument("options", nargs="*", help="passed to bench/pool.py (after --)")
    args = parser.parse_args()
    other = checkout(args.commit)
    ratios, cpu_ratios, lights = [], [], []
    flags = f" ({' '.join(args.here)} here)" if args.here else ""
    print(f"pool bench, this checkout{flags} against {args.commit}, {args.pairs} pairs run in turns")
    for pair in range(1, args.pairs + 1):
        (here, here_cpu, here_light) = cycles(ROOT, [*args.options, *args.here])
        (there, there_cpu, there_light) = cycles(other, args.options)
        ratios.append(here / there)
        cpu_ratios.append(there_cpu / here_cpu)
        light = ""
        if here_light is not None and there_light is not None:
            lights.append((here_light, there_light))
            light = f"   light-load dispatch p50 ms {here_light:5.1f} against {there_light:5.1f}"
        print(f"  pair {pair}: {here:6.1f} against {there:6.1f} job cycles/s   ratio {ratios[-1]:.2f}   "
              f"CPU ms a cycle (server + PostgreSQL) {here_cpu:5.1f} against {there_cpu:5.1f}{light}", flush=True)
    median = statistics.median(ratios)
    verdict = "within" if median >= 0.95 else "more than"
    print(f"  median ratio {median:.2f} (range {min(ratios):.2f}-{max(ratios):.2f}): {verdict} 5 % of {args.commit}")
    print(f"  cycles per CPU second, as a share of {args.commit}'s: median {statistics.median(cpu_ratios):.2f} "
          f"(range {min(cpu_ratios):.2f}-{max(cpu_ratios):.2f})")
    if lights:
        print(f"  light-load dispatch from the POST, median of the pairs' p50s: "
              f"{statistics.median(h for h, _ in lights):.1f} ms against {statistics.median(t for _, t in lights):.1f} ms")


if __name__ == "__main__":
    main()
