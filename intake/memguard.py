"""Memory: given back between attachments, and a last-resort ceiling for the whole process.

The limits in `intake.forms.spec.Limits` and `intake.message.Limits` bound the work of every
message before memory is spent; this module is for what they did not foresee. `apply` sets a
soft RLIMIT_DATA (the heap and private anonymous mappings, not shared libraries or reserved
address space), so an allocation past the ceiling fails inside the message that asked for it and
Python raises MemoryError there: the form reader turns it into a `too_large` problem for that
file, and `pipeline.process_message` into a failure of that message only (retried a bounded
number of times, then FAILED with a review item). Without it, the kernel's OOM killer ends the
worker, and the same mail ends it again after every restart.

`release` hands freed memory back to the system after an expensive attachment: CPython and
glibc keep freed blocks for reuse, so the peak of one bomb would otherwise stay the worker's
size for good.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import resource
from functools import cache

log = logging.getLogger(__name__)

MB = 1024 * 1024
# An attachment that unpacked (or was) more than this is followed by `release`; smaller ones
# are not worth a full garbage collection each.
RELEASE_AFTER = 4 * MB
# Headroom above what the process already holds when the ceiling is set: a ceiling below the
# current size would make the next allocation of any kind fail.
_HEADROOM = 128 * MB


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def apply(limit_mb: int) -> int | None:
    """Cap the process's data segment at `limit_mb` (0: no cap); returns the cap in bytes set.

    Never lowers a cap that is already tighter (a container's own), never goes below what the
    process holds now plus some headroom, and never fails a command: where the system refuses,
    the service runs without the guard and says so in the log.
    """
    if limit_mb <= 0:
        return None
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        wanted = limit_mb * MB
        held = (_status_kb("VmData") or 0) * 1024
        wanted = max(wanted, held + _HEADROOM)
        if hard != resource.RLIM_INFINITY:
            wanted = min(wanted, hard)
        if soft != resource.RLIM_INFINITY and soft <= wanted:
            return int(soft)
        resource.setrlimit(resource.RLIMIT_DATA, (wanted, hard))
    except (OSError, ValueError) as exc:
        log.warning("memory.guard_unavailable reason=%s", exc)
        return None
    log.info("memory.guard limit_mb=%d", wanted // MB)
    return wanted


@cache
def _malloc_trim() -> object | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None)  # glibc only
    except OSError:
        return None


def release() -> None:
    """Collect garbage and return free heap pages to the system (glibc's malloc_trim)."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)  # type: ignore[operator]
