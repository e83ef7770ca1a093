"""What /proc says about a running process, for the benchmarks (stdlib only: the register hosts of
bench.farm_hosts import it too)."""
from __future__ import annotations

import os
from pathlib import Path


def vm_hwm_kb(pid: int) -> int:
    """A running process's peak RSS (VmHWM) in kB, 0 if unreadable. Not ru_maxrss: on Linux that also
    counts the benchmark process's own RSS copied into the child before its exec."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def cpu_s(pid: int) -> float:
    """A running process's CPU seconds so far (user + system), 0.0 if unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()   # after "pid (comm)"
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")      # utime, stime
    except (OSError, ValueError, IndexError):
        return 0.0
