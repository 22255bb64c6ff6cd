"""How much of the machine's CPU time the hypervisor took from this guest during a measurement
(the "steal" time of Linux's /proc/stat), so that a benchmark's record says whether its
timings were disturbed from outside.

    before = cpu_times(); ...; share = steal_share(before, cpu_times())
"""

from pathlib import Path

PROC_STAT = Path("/proc/stat")


def parse_cpu_times(text: str) -> tuple[int, int] | None:
    """(all CPU time, the stolen part) in clock ticks from the text of /proc/stat: its first
    ``cpu`` line's user, nice, system, idle, iowait, irq, softirq and steal fields (guest time
    is already inside user); None when there is no such line with eight numbers."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            try:
                ticks = [int(v) for v in fields[1:9]]
            except ValueError:
                return None
            return (sum(ticks), ticks[7]) if len(ticks) == 8 else None
    return None


def cpu_times(stat: Path = PROC_STAT) -> tuple[int, int] | None:
    """``parse_cpu_times`` of the machine now; None where /proc/stat cannot be read (not Linux)."""
    try:
        return parse_cpu_times(stat.read_text())
    except OSError:
        return None


def steal_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share (0 to 1) of the CPU time between two ``cpu_times`` that was stolen; None when
    either is unknown or no time passed."""
    if before is None or after is None:
        return None
    total, steal = after[0] - before[0], after[1] - before[1]
    return steal / total if total > 0 else None
