"""The memory guard against the real kernel, each in a fresh interpreter (a ceiling set in the
test process itself would outlive the test): past the ceiling an allocation is a MemoryError the
caller can catch and go on from; `release` gives freed memory back; a bad setting never stops a
command."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.intake_env import REPO


def _python(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_past_the_ceiling_an_allocation_fails_and_the_process_goes_on() -> None:
    out = _python(
        """
        from intake import memguard
        assert memguard.apply(300)
        try:
            hog = bytearray(600 * 1024 * 1024)
        except MemoryError:
            print("refused")
        small = [bytes(1000) for _ in range(10_000)]  # the process itself is fine
        print(len(small))
        """
    )
    assert out.splitlines() == ["refused", "10000"]


def test_the_ceiling_is_never_below_what_the_process_holds() -> None:
    out = _python(
        """
        import resource
        from intake import memguard
        ballast = [bytes(100) for _ in range(1_000_000)]  # ~150 MB held before the ceiling
        limit = memguard.apply(1)
        held = int(open("/proc/self/status").read().split("VmData:")[1].split()[0]) * 1024
        print(limit > held, resource.getrlimit(resource.RLIMIT_DATA)[0] == limit)
        print(memguard.apply(0))
        """
    )
    assert out.splitlines() == ["True True", "None"]


def test_release_gives_freed_memory_back() -> None:
    out = _python(
        """
        from intake import memguard

        def rss():
            return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024

        before = rss()
        # blocks from C malloc (as lxml's trees and big Python objects are), one kept at the top
        junk = [bytes(1000 + i % 7) for i in range(300_000)]
        pin = bytes(1000)
        grown = rss() - before
        del junk
        kept = rss() - before  # freed, but glibc holds it below the pinned block
        memguard.release()
        print(grown > 200, kept > 200, rss() - before < 40)
        """
    )
    assert out == "True True True"
