"""Scripts from files: plain text and markdown as they are, EPUB books as markdown (each spine document's
headings become chapters, its paragraphs lines). An EPUB is a zip from a stranger: its member count, the sizes
it declares and the bytes it really inflates to are all capped (members are read in bounded pieces, since a
declared size can lie), and its XML is parsed by defusedxml (no DTD, entities or external references)."""

from __future__ import annotations

import io
import lzma
import posixpath
import struct
import zipfile
import zlib
from html.parser import HTMLParser
from pathlib import PurePosixPath
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException, ElementTree  # type: ignore[import-untyped]  # it ships no stubs

from tts_studio.errors import InvalidRequest, PayloadTooLarge
from tts_studio.projects.script import MAX_SCRIPT_CHARS

MB = 1024 * 1024
MAX_IMPORT_BYTES = 50 * MB  # the file as uploaded (413 above)
MAX_INFLATED_BYTES = 200 * MB  # everything read out of one EPUB, whatever its members claim
MAX_MEMBERS = 10_000  # files in one EPUB (and documents in its spine)
MAX_DOCUMENT_BYTES = 32 * MB  # one spine document, read whole and then parsed
MAX_PACKAGE_BYTES = 4 * MB  # container.xml and the OPF package, parsed into element trees
_PIECE = 64 * 1024  # members inflate this much at a time
_NS = {"c": "urn:oasis:names:tc:opendocument:xmlns:container", "opf": "http://www.idpf.org/2007/opf"}
_CENTRAL_ENTRY = b"PK\x01\x02"  # each member's central directory record starts so
# what a mangled zip or its XML raise (found by flipping bytes of a good EPUB)
_UNREADABLE = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    KeyError,
    EOFError,
    NotImplementedError,
    RuntimeError,
    ParseError,
    ValueError,
    OverflowError,
    OSError,
    lzma.LZMAError,
    zlib.error,
    struct.error,
)


class _Text(HTMLParser):
    """XHTML -> markdown lines: h1-h2 as chapters, block elements as lines; scripts and styles dropped."""

    BLOCKS = frozenset({"p", "div", "li", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "br", "tr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._current: list[str] = []
        self._heading = False
        self._skip = 0

    def _flush(self) -> None:
        text = " ".join("".join(self._current).split())
        if text:
            self.lines.append(f"# {text}" if self._heading else text)
        self._current, self._heading = [], False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self._skip += 1
        elif tag in self.BLOCKS:
            self._flush()
            self._heading = tag in ("h1", "h2")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head"):
            self._skip = max(0, self._skip - 1)
        elif tag in self.BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._current.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


class _Book:
    """One EPUB's zip, whose members are read against one budget of inflated bytes: what a member claims is
    checked before it is opened, what it really inflates to is counted as it comes out."""

    def __init__(self, data: bytes) -> None:
        if data.count(_CENTRAL_ENTRY) > MAX_MEMBERS:  # an upper bound, counted before zipfile lists them all
            raise _refused(f"The EPUB holds more than {MAX_MEMBERS} files.")
        self.zip = zipfile.ZipFile(io.BytesIO(data))
        members = self.zip.infolist()
        if len(members) > MAX_MEMBERS:
            raise _refused(f"The EPUB holds more than {MAX_MEMBERS} files.")
        if sum(member.file_size for member in members) > MAX_INFLATED_BYTES:
            raise _refused(f"The EPUB inflates to more than {MAX_INFLATED_BYTES // MB} MB.")
        self.left = MAX_INFLATED_BYTES

    def read(self, name: str, limit: int) -> bytes:
        """The member's bytes: at most `limit`, and at most what is left of the book's budget."""
        info = self.zip.getinfo(name)
        cap = min(limit, self.left)
        too_big = (
            f"The EPUB inflates to more than {MAX_INFLATED_BYTES // MB} MB."
            if cap == self.left
            else f"'{name}' in the EPUB is larger than {limit // MB} MB."
        )
        if info.file_size > cap:
            raise _refused(too_big)
        out = bytearray()
        with self.zip.open(info) as member:
            while piece := member.read(_PIECE):
                out += piece
                if len(out) > cap:
                    raise _refused(too_big)
        self.left -= len(out)
        return bytes(out)

    def xml(self, name: str) -> Element:
        root: Element = ElementTree.fromstring(self.read(name, MAX_PACKAGE_BYTES), forbid_dtd=True)
        return root


def _refused(message: str) -> InvalidRequest:
    return InvalidRequest(message, param="file")


def _epub(data: bytes) -> str:
    try:
        book = _Book(data)
        rootfile = book.xml("META-INF/container.xml").find(".//c:rootfile", _NS)
        if rootfile is None or "full-path" not in rootfile.attrib:
            raise _refused("The EPUB's META-INF/container.xml names no package (rootfile).")
        opf_path = rootfile.attrib["full-path"]
        opf = book.xml(opf_path)
        manifest = {item.get("id"): item.get("href") for item in opf.findall(".//opf:manifest/opf:item", _NS)}
        spine = [ref.get("idref") for ref in opf.findall(".//opf:spine/opf:itemref", _NS)]
        if len(spine) > MAX_MEMBERS:
            raise _refused(f"The EPUB's spine lists more than {MAX_MEMBERS} documents.")
        parts, length = [], 0
        for idref in spine:
            href = manifest.get(idref)
            if href is None:
                raise _refused(f"The EPUB's spine names '{idref}', which its manifest does not list.")
            path = posixpath.normpath(posixpath.join(posixpath.dirname(opf_path), href))
            parser = _Text()
            parser.feed(book.read(path, MAX_DOCUMENT_BYTES).decode("utf-8", "replace"))
            parser.close()
            parts.append("\n".join(parser.lines))
            length += len(parts[-1]) + 2
            if length > MAX_SCRIPT_CHARS:
                raise _refused(f"The book is longer than a script may be ({MAX_SCRIPT_CHARS} characters).")
    except DefusedXmlException:
        raise _refused("The EPUB's XML declares a DTD or entities, which an import does not accept.") from None
    except _UNREADABLE as exc:
        raise _refused(f"The EPUB cannot be read ({type(exc).__name__}).") from None
    return "\n\n".join(part for part in parts if part.strip())


_SUFFIXES = {"text/plain": ".txt", "text/markdown": ".md", "text/x-markdown": ".md", "application/epub+zip": ".epub"}


def import_filename(filename: str | None, content_type: str | None) -> str:
    """The upload's file name; one without a known suffix gets the one its media type names."""
    name = PurePosixPath((filename or "").replace("\\", "/")).name
    if name.lower().rsplit(".", 1)[-1] in ("epub", "txt", "md", "markdown", "text") and "." in name:
        return name
    return name + _SUFFIXES.get((content_type or "").split(";")[0].strip().lower(), "")


def import_title(filename: str) -> str:
    """A project name from the file's name (its stem), for an import sent without one."""
    stem = PurePosixPath(filename).stem.strip()
    return stem[:200] if stem and not stem.startswith(".") else "Untitled"


def script_from_file(name: str, data: bytes) -> str:
    """The script text of an uploaded .txt, .md or .epub file."""
    if len(data) > MAX_IMPORT_BYTES:
        raise PayloadTooLarge(f"The file is larger than {MAX_IMPORT_BYTES // 2**20} MB.", param="file")
    suffix = name.lower().rsplit(".", 1)[-1] if "." in name else ""
    if suffix == "epub":
        return _epub(data)
    if suffix in ("txt", "md", "markdown", "text"):
        return data.decode("utf-8-sig", "replace")
    raise InvalidRequest("Import a .txt, .md or .epub file.", param="file")
