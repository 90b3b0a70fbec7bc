"""Small files that cost a naive reader gigabytes: the cell and shared-string bombs of issue 11.

Each is a real, valid filled form with one hostile part added, so a reader that does not bound
its work would not just be slow, it would accept the form. Parts are written to the zip in
chunks, so building a bomb costs the test process little memory.
"""

from __future__ import annotations

from functools import lru_cache
from io import BytesIO
from zipfile import ZIP_DEFLATED, ZipFile

from tests.forms.builders import filled_form_bytes

SHEET = "xl/worksheets/sheet2.xml"  # the instructions sheet: the form itself stays intact
SST = "xl/worksheets/sharedStrings.xml"  # under xl/worksheets/, where sheets are streamed
_SST_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_CHUNK = 1_000_000


def _rebuilt(base: bytes, skip: str, extra: dict[str, bytes]) -> tuple[BytesIO, ZipFile]:
    out = BytesIO()
    zout = ZipFile(out, "w", ZIP_DEFLATED, compresslevel=9)
    with ZipFile(BytesIO(base)) as zin:
        for item in zin.infolist():
            if item.filename == skip:
                continue
            data = extra.get(item.filename, zin.read(item.filename))
            zout.writestr(item.filename, data)
    return out, zout


def _repeat(fh: object, unit: bytes, count: int) -> None:
    write = fh.write  # type: ignore[attr-defined]
    block = unit * _CHUNK
    for _ in range(count // _CHUNK):
        write(block)
    write(unit * (count % _CHUNK))


@lru_cache(maxsize=4)
def cell_bomb(cells: int = 12_000_000, province: str = "เชียงใหม่") -> bytes:
    """A filled form whose second sheet ends in one row of `cells` empty `<c/>` (~75 KB)."""
    base = filled_form_bytes(province)
    with ZipFile(BytesIO(base)) as zf:
        sheet = zf.read(SHEET)
    head, _, tail = sheet.partition(b"</sheetData>")
    out, zout = _rebuilt(base, SHEET, {})
    with zout, zout.open(SHEET, "w", force_zip64=True) as fh:
        fh.write(head + b'<row r="1000">')
        _repeat(fh, b"<c/>", cells)
        fh.write(b"</row></sheetData>" + tail)
    return out.getvalue()


@lru_cache(maxsize=4)
def shared_strings_bomb(count: int = 9_500_000, province: str = "เชียงใหม่") -> bytes:
    """A filled form with `count` empty shared strings in a part under xl/worksheets/."""
    base = filled_form_bytes(province)
    with ZipFile(BytesIO(base)) as zf:
        types = zf.read("[Content_Types].xml").decode()
    types = types.replace(
        "</Types>", f'<Override PartName="/{SST}" ContentType="{_SST_TYPE}"/></Types>'
    )
    out, zout = _rebuilt(base, SST, {"[Content_Types].xml": types.encode()})
    with zout, zout.open(SST, "w", force_zip64=True) as fh:
        fh.write(f'<sst xmlns="{_MAIN}" count="{count}" uniqueCount="{count}">'.encode())
        _repeat(fh, b"<si/>", count)
        fh.write(b"</sst>")
    return out.getvalue()


@lru_cache(maxsize=2)
def styles_bomb(megabytes: int = 40) -> bytes:
    """A filled form whose styles part (parsed whole) carries `megabytes` of empty elements with
    attributes: ~30 times its size as a tree. Only a description without limits lets it through."""
    base = filled_form_bytes()
    with ZipFile(BytesIO(base)) as zf:
        styles = zf.read("xl/styles.xml")
    head, sep, tail = styles.partition(b"<numFmts")
    out, zout = _rebuilt(base, "xl/styles.xml", {})
    with zout, zout.open("xl/styles.xml", "w", force_zip64=True) as fh:
        fh.write(head)
        unit = b'<x a="1" b="1"/>'
        _repeat(fh, unit, megabytes * 1024 * 1024 // len(unit))
        fh.write(sep + tail)
    return out.getvalue()
