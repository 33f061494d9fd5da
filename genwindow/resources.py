"""Memory checks that turn an impossible size into an error before any work starts."""

from __future__ import annotations

import os

from genwindow.errors import ConfigError

# Keep a fifth of the available memory free for Python, the plotting and the OS.
USABLE_FRACTION = 0.8


def available_memory_bytes() -> int:
    """Return MemAvailable from /proc/meminfo, or the physical memory where it is missing."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(bytes_needed: float, description: str, option: str) -> None:
    """Raise ConfigError naming ``option`` when ``bytes_needed`` exceeds usable memory."""
    available = available_memory_bytes()
    if bytes_needed > USABLE_FRACTION * available:
        raise ConfigError(
            f"{option}: {description} needs about {bytes_needed / 2**30:.1f} GiB of memory but "
            f"{available / 2**30:.1f} GiB is available; lower {option}")
