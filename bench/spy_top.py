"""The top entries of a ``bench.pool --profile`` file (py-spy's raw collapsed stacks).

    .venv/bin/python -m bench.spy_top DIR/farm_oop-0.txt            # top 25 by own and by total samples
    .venv/bin/python -m bench.spy_top DIR/farm_oop-0.txt --top 40 --match lane

A line of a raw file is ``frame;frame;...;leaf count``, a frame ``function (file:line)``. "Own" counts a
sample for its innermost frame, "total" for every distinct function on its stack; with ``--gil`` (as
bench.pool records) a sample is the thread holding the GIL, so the shares are of the worker's Python time.
"""
from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"^(.*) (\d+)$")
_FRAME = re.compile(r"^(.*?) \((.*?)(?::\d+)?\)$")


def _function(frame: str) -> str:
    """``name (path:line)`` → ``name (file)``: lines of one function count together."""
    m = _FRAME.match(frame)
    if not m:
        return frame
    return f"{m.group(1)} ({Path(m.group(2)).name})"


def tally(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    """(samples, own samples per function, total samples per function) of one raw py-spy file."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        count = int(m.group(2))
        frames = [_function(f) for f in m.group(1).split(";")]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))] or frames
        samples += count
        own[frames[-1]] += count
        for f in set(frames):
            total[f] += count
    return samples, own, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", type=Path)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--match", default="", help="only functions whose name or file contains this")
    args = ap.parse_args()
    samples, own, total = tally(args.file)
    print(f"{samples} samples")
    for title, counts in (("own", own), ("total", total)):
        print(f"-- by {title}")
        shown = [(f, n) for f, n in counts.most_common() if args.match in f][:args.top]
        for f, n in shown:
            print(f"{100 * n / max(samples, 1):6.1f} %  {n:7d}  {f}")


if __name__ == "__main__":
    main()
