"""Spreadsheet readers side by side: today's .xlsx reader against python-calamine (issue 13).

    python bench/readers.py [--repeat 30]

Per form (the six bench forms of `common.base_forms`, 30-60 KB, 400-600 rows), the median of
`--repeat` reads, in one process, warm:

- `intake_xlsx_onepass`: the reader before issue 13 (zip checks, the one-pass lxml reader
  `xlsx.py`, formulas without a result from the same pass);
- `intake_xlsx`: `sources.open_source` as the service calls it now (zip checks, the byte scan
  `calamine.plain`, then calamine; `calamine_gate` is the scan alone);
- `calamine_values`: python-calamine alone, every sheet to Python lists (what a user's own
  script would cost: no limits, no formula check);
- `calamine_checked`: what adopting calamine for .xlsx would have to cost at least: the same
  zip checks, a pre-pass that bounds what calamine allocates (cells and the farthest cell
  reference of each sheet, shared strings; calamine builds a dense grid up to the farthest cell),
  the formula pass (`sources._has_formulas`), then calamine's values;
- `intake_ods`, `calamine_ods`: the same forms saved as .ods by LibreOffice (when `soffice` is
  there), read by intake (`ods.scan` then calamine) and by calamine alone.

Then each hostile file of `tests/forms/bombs.py` plus two that only calamine fears (a cell at
XFD1048576; a sheet whose `<dimension>` claims it) is read in a fresh child process under a 4 GB
address-space cap, once by intake and once by calamine alone: peak RSS (VmHWM), seconds and the
outcome.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

from common import REPO, base_forms, line

from intake.forms import calamine, sources
from intake.forms.spec import Limits
from tests.forms.bombs import cell_bomb, ods_repeat_bomb, shared_strings_bomb, styles_bomb
from tests.forms.builders import default_spec, filled_form_bytes, libreoffice_convert

_CELL = re.compile(rb'<c[\s>/](?:[^>]*?\br="([A-Z]{1,3})(\d+)")?')
_SI = re.compile(rb"<si[\s>/]")
_CHUNK = 256 * 1024


def calamine_values(data: bytes) -> int:
    """python-calamine alone: every sheet's values as Python lists."""
    import python_calamine

    book = python_calamine.CalamineWorkbook.from_filelike(BytesIO(data))
    cells = 0
    for name in book.sheet_names:
        for row in book.get_sheet_by_name(name).to_python(skip_empty_area=False):
            cells += len(row)
    book.close()
    return cells


def prepass(data: bytes, limits: Limits) -> None:
    """The least a calamine .xlsx path must check before calamine reads: per sheet the cells and
    the farthest row and column referenced (calamine's grid is dense up to it), and the shared
    strings. A regex over the raw bytes, in chunks (the C-speed floor of such a pass)."""
    with zipfile.ZipFile(BytesIO(data)) as zf:
        for info in zf.infolist():
            name = info.filename
            if not name.endswith(".xml"):
                continue
            sheet, strings = "worksheets/" in name, "sharedStrings" in name
            if not (sheet or strings):
                continue
            cells = far_row = far_col = 0
            with zf.open(info) as fh:
                tail = b""
                while chunk := fh.read(_CHUNK):
                    text = tail + chunk
                    cut = text.rfind(b"<")  # a tag split across chunks is read with the next
                    text, tail = text[:cut], text[cut:]
                    if strings:
                        cells += len(_SI.findall(text))
                        if cells > limits.max_shared_strings:
                            raise sources.SourceProblem("too_large", "shared strings")
                        continue
                    for letters, digits in _CELL.findall(text):
                        cells += 1
                        if digits:
                            far_row = max(far_row, int(digits))
                            col = 0
                            for char in letters:
                                col = col * 26 + char - 64
                            far_col = max(far_col, col)
                    if cells > limits.max_cells or far_row * far_col > limits.max_cells:
                        raise sources.SourceProblem("too_large", "cells")


def calamine_checked(data: bytes) -> int:
    spec = default_spec()
    sources._check_zip(data, spec.limits, sources.MessageBudget.of(spec.limits))
    prepass(data, spec.limits)
    sources._has_formulas(data)
    return calamine_values(data)


def onepass(data: bytes) -> int:
    """The reader before issue 13: the zip checks, then `xlsx.py` (values and formulas)."""
    spec = default_spec()
    sources._check_zip(data, spec.limits, sources.MessageBudget.of(spec.limits))
    source = sources._xlsx_direct(data, spec, lambda grid: True)
    return sum(len(row) for grid in source.grids for row in grid.rows)


def gate(data: bytes) -> bool:
    """`calamine.plain` alone: the byte scan that lets a workbook take the calamine path."""
    with zipfile.ZipFile(BytesIO(data)) as zf:
        return calamine.plain(zf, default_spec().limits)


def intake_read(kind: str) -> Callable[[bytes], int]:
    spec = default_spec()

    def read(data: bytes) -> int:
        source = sources.open_source(kind, data, spec)
        return sum(len(row) for grid in source.grids for row in grid.rows)

    return read


def per_form_ms(read: Callable[[bytes], int], forms: list[bytes], repeat: int) -> float:
    """Median over `repeat` rounds of the mean time per form, in ms."""
    for form in forms:
        read(form)  # warm: imports, caches
    rounds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for form in forms:
            read(form)
        rounds.append((time.perf_counter() - start) / len(forms) * 1000)
    return statistics.median(rounds)


_CHILD = """
import resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
data = open(sys.argv[2], "rb").read()
start = time.perf_counter()
try:
    if sys.argv[1] == "calamine":
        sys.path.insert(0, "bench")
        from readers import calamine_values
        outcome = f"read {calamine_values(data):,} cells"
    else:
        from intake.forms import read_forms
        from tests.forms.builders import default_spec
        (result,) = read_forms("f." + sys.argv[3], sys.argv[3], data, default_spec())
        outcome = ",".join(p.code for p in result.problems) or "accepted"
except BaseException as exc:
    outcome = type(exc).__name__
seconds = time.perf_counter() - start
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(f"{int(hwm) // 1024} MB, {seconds:.2f} s, {outcome}")
"""


def hostile(name: str, data: bytes, kind: str, tmp: Path) -> None:
    path = tmp / f"{name}.{kind}"
    path.write_bytes(data)
    for reader in ("intake", "calamine"):
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, reader, str(path), kind],
            capture_output=True, text=True, cwd=REPO, timeout=600,
        )  # fmt: skip
        result = done.stdout.strip() or f"killed ({done.returncode}): {done.stderr[-200:]}"
        line(f"{name}_{reader}", result, f"({len(data) / 1024:.0f} KB file)")


def far_cell() -> bytes:
    """A valid form plus one empty-valued cell at XFD1048576 on the instructions sheet."""
    from tests.forms.bombs import SHEET
    from tests.forms.builders import read_member, replace_member

    base = filled_form_bytes()
    xml = read_member(base, SHEET).replace(
        "</sheetData>", '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData>'
    )
    return replace_member(base, SHEET, xml)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    forms = base_forms()
    line("forms", len(forms), f"(mean {sum(map(len, forms)) / len(forms) / 1024:.0f} KB)")
    assert all(gate(form) for form in forms), "the bench forms take the calamine path"
    before = per_form_ms(onepass, forms, args.repeat)
    today = per_form_ms(intake_read("xlsx"), forms, args.repeat)
    values = per_form_ms(calamine_values, forms, args.repeat)
    checked = per_form_ms(calamine_checked, forms, args.repeat)
    line("intake_xlsx_onepass", before, "ms/form (xlsx.py, the reader before issue 13)")
    line("intake_xlsx", today, "ms/form (open_source: calamine.plain, then calamine)")
    line("calamine_gate", per_form_ms(gate, forms, args.repeat), "ms/form (calamine.plain)")
    line("calamine_values", values, "ms/form")
    line("calamine_checked", checked, "ms/form (zip checks + simple pre-pass + calamine)")
    line("ratio_onepass_to_calamine_values", before / values)
    line("ratio_intake_to_calamine_values", today / values)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        try:
            named = {str(i): form for i, form in enumerate(forms)}
            odss = list(libreoffice_convert(named, "ods", tmp / "soffice").values())
        except (AssertionError, OSError, subprocess.SubprocessError) as exc:
            line("ods", f"skipped: {exc}")
            odss = []
        if odss:
            line("intake_ods", per_form_ms(intake_read("ods"), odss, args.repeat), "ms/form")
            line("calamine_ods", per_form_ms(calamine_values, odss, args.repeat), "ms/form")
        hostile("cell_bomb", cell_bomb(), "xlsx", tmp)
        hostile("shared_strings_bomb", shared_strings_bomb(), "xlsx", tmp)
        hostile("styles_bomb", styles_bomb(), "xlsx", tmp)
        hostile("far_cell", far_cell(), "xlsx", tmp)
        hostile("ods_repeat_bomb", ods_repeat_bomb(), "ods", tmp)


if __name__ == "__main__":
    main()
