"""Small files that cost a naive reader gigabytes: the cell and shared-string bombs of issue 11.

Each is a real, valid filled form with one hostile part added, so a reader that does not bound
its work would not just be slow, it would accept the form. Parts are written to the zip in
chunks, so building a bomb costs the test process little memory.
"""

from __future__ import annotations

from functools import lru_cache
from io import BytesIO
from zipfile import ZIP_DEFLATED, ZIP_STORED, ZipFile

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
    attributes: ~30 times its size as a tree. Only a description without limits lets it through.
    A comment in it sends the file past the calamine gate (`intake/forms/calamine.py`) to
    `xlsx.py`, which parses such a part whole: calamine would skip the styles, and the bomb is
    about the whole-part parse (and the memory ceiling behind it)."""
    base = filled_form_bytes()
    with ZipFile(BytesIO(base)) as zf:
        styles = zf.read("xl/styles.xml")
    head, sep, tail = styles.partition(b"<numFmts")
    out, zout = _rebuilt(base, "xl/styles.xml", {})
    with zout, zout.open("xl/styles.xml", "w", force_zip64=True) as fh:
        fh.write(head + b"<!-- a comment: not a plain workbook -->")
        unit = b'<x a="1" b="1"/>'
        _repeat(fh, unit, megabytes * 1024 * 1024 // len(unit))
        fh.write(sep + tail)
    return out.getvalue()


ODS_MIMETYPE = "application/vnd.oasis.opendocument.spreadsheet"
_ODS_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
)
_ODS_MANIFEST = (
    '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
    f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{ODS_MIMETYPE}"/>'
    "</manifest:manifest>"
)


def ods_bytes(tables: dict[str, str], manifest: str = _ODS_MANIFEST) -> bytes:
    """A minimal .ods as LibreOffice lays it out: a stored `mimetype` first, then content.xml
    with one `table:table` per entry (name -> the rows' XML)."""
    body = "".join(f'<table:table table:name="{name}">{rows}</table:table>'
                   for name, rows in tables.items())  # fmt: skip
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {_ODS_NS}>'
        f"<office:body><office:spreadsheet>{body}</office:spreadsheet></office:body>"
        "</office:document-content>"
    )
    out = BytesIO()
    with ZipFile(out, "w", ZIP_DEFLATED) as zf:
        zf.writestr("mimetype", ODS_MIMETYPE, compress_type=ZIP_STORED)
        zf.writestr("META-INF/manifest.xml", manifest)
        zf.writestr("content.xml", content)
    return out.getvalue()


def ods_cell(value: str | float, repeat: int = 1) -> str:
    """One .ods cell holding a number or a string, repeated `repeat` columns."""
    rep = f' table:number-columns-repeated="{repeat}"' if repeat > 1 else ""
    if isinstance(value, str):
        kind = 'office:value-type="string"'
    else:
        kind = f'office:value-type="float" office:value="{value}"'
    return f"<table:table-cell {kind}{rep}><text:p>{value}</text:p></table:table-cell>"


def ods_repeat_bomb(rows: int = 100_000, columns: int = 1000, chars: int = 100) -> bytes:
    """Under 1 KB: one `chars`-long string repeated `columns` across in a row repeated `rows`
    times. calamine copies it into every cell: 10 GB at the defaults."""
    row = f'<table:table-row table:number-rows-repeated="{rows}">'
    return ods_bytes({"แบบฟอร์ม": row + ods_cell("x" * chars, columns) + "</table:table-row>"})
