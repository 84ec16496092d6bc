"""What the machine has: the memory a run may still allocate, read before any work so that an
input sized to exhaust it (a pool of tens of thousands of samples with 100,000 classes) is one
clear line instead of an allocator failure after training."""

from __future__ import annotations

import os


def available_memory_bytes() -> int | None:
    """Memory the kernel says a process can allocate without swapping (Linux' ``MemAvailable``),
    else the free physical pages; None where neither can be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
