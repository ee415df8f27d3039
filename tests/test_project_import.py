"""Imports: `POST /v1/projects` as multipart/form-data (`name`, `file`: .txt, .md or .epub) with the limits the
Projects tab has, and EPUBs built to exhaust the server (a zip bomb, sizes that lie, too many members, XML
entities) refused with a 4xx envelope naming `file`, without the server's memory following the bomb."""

from __future__ import annotations

import io
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.test_errors import assert_envelope
from tts_studio.errors import InvalidRequest, PayloadTooLarge
from tts_studio.projects.importing import MAX_IMPORT_BYTES, MAX_INFLATED_BYTES, MAX_MEMBERS, script_from_file

CHUNK = 1 << 20
BOMB_BYTES = 3 << 30  # 3 GiB of zeros: about 3 MB deflated


@dataclass(frozen=True)
class Member:
    """A zip member as stored: raw deflate data, its CRC and the uncompressed size the zip claims."""

    name: str
    data: bytes
    crc: int
    size: int


def member(name: str, text: str | bytes) -> Member:
    raw = text.encode() if isinstance(text, str) else text
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return Member(name, packer.compress(raw) + packer.flush(), zlib.crc32(raw), len(raw))


def zeros(name: str, size: int, byte: bytes = b"\0") -> Member:
    """`size` bytes of zeros (a multiple of CHUNK), deflated without ever holding them: after a full flush
    every further chunk of zeros deflates to the same bytes, so the stream is one block repeated."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    zero = byte * CHUNK
    first = packer.compress(zero) + packer.flush(zlib.Z_FULL_FLUSH)
    repeat = packer.compress(zero) + packer.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(size // CHUNK):
        crc = zlib.crc32(zero, crc)
    return Member(name, first + repeat * (size // CHUNK - 1) + packer.flush(), crc, size)


def zip_bytes(members: list[Member]) -> bytes:
    """A zip written by hand (local headers, central directory, end record), so a size can be any claim."""
    out, central = io.BytesIO(), []
    for item in members:
        offset, name = out.tell(), item.name.encode()
        out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, item.crc, len(item.data), item.size,
                              len(name), 0) + name + item.data)  # fmt: skip
        central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, item.crc, len(item.data),
                                   item.size, len(name), 0, 0, 0, 0, 0, offset) + name)  # fmt: skip
    start, directory = out.tell(), b"".join(central)
    out.write(directory + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(directory),
                                      start, 0))  # fmt: skip
    return out.getvalue()


CONTAINER = ('<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
             '<rootfile full-path="OEBPS/book.opf"/></rootfiles></container>')  # fmt: skip


def opf(hrefs: list[str], doctype: str = "") -> str:
    items = "".join(f'<item id="i{n}" href="{href}"/>' for n, href in enumerate(hrefs))
    spine = "".join(f'<itemref idref="i{n}"/>' for n in range(len(hrefs)))
    return f'{doctype}<package xmlns="http://www.idpf.org/2007/opf"><manifest>{items}</manifest><spine>{spine}</spine></package>'


def book(documents: list[Member], extra: list[Member] | None = None, package: str | None = None) -> bytes:
    """An EPUB whose spine is `documents` (named relative to OEBPS/)."""
    hrefs = [d.name.removeprefix("OEBPS/") for d in documents]
    head = [member("mimetype", "application/epub+zip"), member("META-INF/container.xml", CONTAINER),
            member("OEBPS/book.opf", package if package is not None else opf(hrefs))]  # fmt: skip
    return zip_bytes(head + documents + (extra or []))


ONE = "<html><head><style>p{}</style></head><body><h1>First</h1><p>It was a <b>bright</b> day.</p><p>Birds sang.</p>"
CHAPTERS = [
    member("OEBPS/one.xhtml", ONE + "</body></html>"),
    member("OEBPS/two.xhtml", "<html><body><h2>Second</h2><p>The end &amp; more.</p></body></html>"),
]


@pytest.fixture(scope="module")
def bomb() -> Member:
    return zeros("OEBPS/bomb.xhtml", BOMB_BYTES)


def _post(url: str, filename: str, data: bytes, fields: dict[str, str] | None = None,
          content_type: str = "application/octet-stream") -> httpx.Response:  # fmt: skip
    form = {"name": "Imported"} if fields is None else fields
    return httpx.post(f"{url}/v1/projects", data=form, files={"file": (filename, data, content_type)}, timeout=120)


def _texts(project: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    return [(c["title"], [(line["speaker"], line["text"]) for line in c["lines"]]) for c in project["chapters"]]


@pytest.mark.parametrize(
    ("filename", "data", "expected"),
    [
        ("notes.txt", b"Alice: Good morning.\nThe river was wide.\n", [("", [("Alice", "Good morning."),
                                                                            ("Narrator", "The river was wide.")])]),
        ("script.md", "\ufeff# Hi\nBob: There.\n# Bye\nGone.".encode(), [("Hi", [("Bob", "There.")]),
                                                                          ("Bye", [("Narrator", "Gone.")])]),
        ("book.epub", book(CHAPTERS), [("First", [("Narrator", "It was a bright day."), ("Narrator", "Birds sang.")]),
                                       ("Second", [("Narrator", "The end & more.")])]),
    ],
)  # fmt: skip
def test_multipart_import_creates_the_project(server: LiveServer, filename: str, data: bytes, expected: Any) -> None:
    response = _post(server.url, filename, data, {"name": f"From {filename}"})
    assert response.status_code == 201, response.text
    project = response.json()
    assert project["name"] == f"From {filename}" and project["status"] == "draft"
    assert _texts(project) == expected
    stored = httpx.get(f"{server.url}/v1/projects/{project['id']}").json()
    assert _texts(stored) == expected and stored["script"] == project["script"]


def test_multipart_import_defaults_the_name_to_the_file(server: LiveServer) -> None:
    response = _post(server.url, "Moby Dick.txt", b"Call me Ishmael.", fields={})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Moby Dick"


@pytest.mark.parametrize(
    ("filename", "data", "fields"),
    [
        ("song.mp3", b"ID3\x03\x00", None),  # not a script
        ("book.epub", b"not a zip at all", None),
        ("book.epub", zip_bytes([member("mimetype", "application/epub+zip")]), None),  # no container
        ("empty.txt", b"   \n", None),  # nothing to say
        ("notes.txt", b"Hello.", {"name": "Notes", "colour": "red"}),  # an unknown field
    ],
)
def test_bad_imports_are_400_naming_file(server: LiveServer, filename: str, data: bytes,
                                         fields: dict[str, str] | None) -> None:  # fmt: skip
    response = _post(server.url, filename, data, fields)
    assert response.status_code == 400, response.text
    assert_envelope(response.json(), param="colour" if fields and "colour" in fields else "file")


def test_a_missing_file_is_400(server: LiveServer) -> None:
    response = httpx.post(f"{server.url}/v1/projects", files={"name": (None, "No file")})
    assert response.status_code == 400, response.text
    assert_envelope(response.json(), "missing_required_parameter", param="file")


def test_an_oversize_import_is_413(server: LiveServer) -> None:
    response = _post(server.url, "huge.txt", b"a" * (MAX_IMPORT_BYTES + 1))
    assert response.status_code == 413, response.text
    assert_envelope(response.json(), param="file")
    assert "50 MB" in response.json()["error"]["message"]


def test_an_other_media_type_is_415(server: LiveServer) -> None:
    response = httpx.post(f"{server.url}/v1/projects", content=b"name=x", headers={"content-type": "text/plain"})
    assert response.status_code == 415, response.text
    assert_envelope(response.json())


def _vm(field: str) -> int:
    """`field` (VmRSS, VmHWM) of this process in bytes: the live server runs in it."""
    with Path("/proc/self/status").open(encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(field)


def _post_measured(server: LiveServer, data: bytes, record_property: Any) -> httpx.Response:
    """Post `data` as an EPUB; records the seconds to the answer and the process's peak memory growth."""
    Path("/proc/self/clear_refs").write_text("5", encoding="ascii")  # resets VmHWM (the peak) to the RSS now
    before = _vm("VmRSS")
    began = time.monotonic()
    response = _post(server.url, "bomb.epub", data, content_type="application/epub+zip")
    record_property("seconds_to_answer", round(time.monotonic() - began, 3))
    growth = _vm("VmHWM") - before
    record_property("peak_rss_growth_mb", round(growth / 2**20, 1))
    assert growth < 300 * 2**20, f"the server's memory grew by {growth / 2**20:.0f} MB"
    return response


def test_an_epub_bomb_is_refused_without_inflating_it(server: LiveServer, bomb: Member, record_property: Any) -> None:
    data = book([CHAPTERS[0], bomb])
    assert len(data) < 5 * 2**20  # a few MB on the wire, 3 GiB inflated
    response = _post_measured(server, data, record_property)
    assert response.status_code == 400, response.text
    assert_envelope(response.json(), param="file")
    assert "200 MB" in response.json()["error"]["message"]
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_an_epub_bomb_that_lies_about_its_size_is_refused(server: LiveServer, bomb: Member,
                                                          record_property: Any) -> None:  # fmt: skip
    liar = Member(bomb.name, bomb.data, bomb.crc, 1024)  # claims 1 KiB; its data inflates to 3 GiB
    response = _post_measured(server, book([CHAPTERS[0], liar]), record_property)
    assert response.status_code == 400, response.text
    assert_envelope(response.json(), param="file")
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_an_epub_inflating_past_the_total_cap_is_refused() -> None:
    chapter = zeros("OEBPS/big.xhtml", 24 << 20)  # each under the cap alone; the spine reads it 9 times
    documents = [Member(f"OEBPS/big{n}.xhtml", chapter.data, chapter.crc, chapter.size) for n in range(9)]
    assert 9 * chapter.size > MAX_INFLATED_BYTES > chapter.size
    with pytest.raises(InvalidRequest) as caught:
        script_from_file("big.epub", book(documents))
    assert caught.value.param == "file" and "200 MB" in caught.value.message


def test_a_spine_reading_one_document_again_and_again_is_charged_each_time() -> None:
    chapter = zeros("OEBPS/big.xhtml", 24 << 20, b" ")  # blank: no text, so only the budget can stop it
    package = opf(["big.xhtml"]).replace('<itemref idref="i0"/>', '<itemref idref="i0"/>' * 9)
    with pytest.raises(InvalidRequest) as caught:
        script_from_file("big.epub", book([chapter], package=package))
    assert caught.value.param == "file" and "200 MB" in caught.value.message


def test_an_epub_with_too_many_members_is_refused() -> None:
    filler = [member(f"OEBPS/f{n}.css", "") for n in range(MAX_MEMBERS)]
    with pytest.raises(InvalidRequest) as caught:
        script_from_file("many.epub", book(CHAPTERS, extra=filler))
    assert caught.value.param == "file" and f"{MAX_MEMBERS}" in caught.value.message


def test_xml_entities_in_an_epub_are_refused() -> None:
    doctype = '<!DOCTYPE package [<!ENTITY doc "one.xhtml">]>'
    package = opf(["&doc;"], doctype)
    with pytest.raises(InvalidRequest) as caught:
        script_from_file("entities.epub", book([CHAPTERS[0]], package=package))
    assert caught.value.param == "file"


def test_an_oversize_file_is_too_large_for_the_ui_as_well() -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        script_from_file("huge.txt", b"a" * (MAX_IMPORT_BYTES + 1))
    assert caught.value.param == "file"


def _mangled(data: bytes, how: str) -> bytes:
    out = bytearray(data)
    if how == "directory offset":  # the end record points past its central directory
        end = out.rfind(b"PK\x05\x06")
        struct.pack_into("<L", out, end + 16, struct.unpack_from("<L", out, end + 16)[0] + 100)
    else:  # every member claims bzip2, which its deflate data is not
        for signature, field in ((b"PK\x01\x02", 10), (b"PK\x03\x04", 8)):
            at = out.find(signature)
            while at >= 0:
                struct.pack_into("<H", out, at + field, 12)
                at = out.find(signature, at + 4)
    return bytes(out)


@pytest.mark.parametrize("how", ["directory offset", "compression method"])
def test_a_mangled_epub_is_a_400_not_a_crash(server: LiveServer, how: str) -> None:
    data = _mangled(book(CHAPTERS), how)
    with pytest.raises(InvalidRequest) as caught:
        script_from_file("mangled.epub", data)
    assert caught.value.param == "file"
    response = _post(server.url, "mangled.epub", data)
    assert response.status_code == 400, response.text
    assert_envelope(response.json(), param="file")
