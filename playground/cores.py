"""How many cores this process may use, and the thread counts that follow (pure: no llama.cpp).

One place for every layer: the engine, the engine options, the config checks.
"""

from __future__ import annotations

import os


def available_cores() -> int:
    """Cores this process may run on (its affinity, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """llama.cpp threads when none are asked for, in the TUI and every headless command alike:
    all cores but one.

    llama.cpp's workers spin at a barrier after every step, so one busy core (the UI, a compile,
    another run) stalls all of them: measured on 2 cores with one competing process, ``-t 2``
    decoded at 1-3 tok/s while ``-t 1`` held 45 tok/s. Leaving a core free costs at most one core's
    share on a quiet machine and keeps the rate steady on a busy one.
    """
    return max(1, available_cores() - 1)


def max_threads() -> int:
    """More threads than this only oversubscribe the cores (and a huge count aborts in C++)."""
    return max(4, 4 * available_cores())
