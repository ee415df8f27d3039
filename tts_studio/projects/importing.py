"""Scripts from files: plain text and markdown as they are, EPUB books as markdown (each spine document's
headings become chapters, its paragraphs lines), with the standard library only."""

from __future__ import annotations

import io
import posixpath
import zipfile
from html.parser import HTMLParser
from xml.etree import ElementTree

from tts_studio.errors import InvalidRequest

MAX_IMPORT_BYTES = 50 * 1024 * 1024
_NS = {"c": "urn:oasis:names:tc:opendocument:xmlns:container", "opf": "http://www.idpf.org/2007/opf"}


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


def _epub(data: bytes) -> str:
    try:
        book = zipfile.ZipFile(io.BytesIO(data))
        container = ElementTree.fromstring(book.read("META-INF/container.xml"))
        rootfile = container.find(".//c:rootfile", _NS)
        if rootfile is None:
            raise KeyError("rootfile")
        opf_path = rootfile.attrib["full-path"]
        opf = ElementTree.fromstring(book.read(opf_path))
        manifest = {item.attrib["id"]: item.attrib["href"] for item in opf.findall(".//opf:manifest/opf:item", _NS)}
        spine = [ref.attrib["idref"] for ref in opf.findall(".//opf:spine/opf:itemref", _NS)]
        parts = []
        for idref in spine:
            href = posixpath.normpath(posixpath.join(posixpath.dirname(opf_path), manifest[idref]))
            parser = _Text()
            parser.feed(book.read(href).decode("utf-8", "replace"))
            parser.close()
            parts.append("\n".join(parser.lines))
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"The EPUB cannot be read ({type(exc).__name__}).", param="file") from None
    return "\n\n".join(part for part in parts if part.strip())


def script_from_file(name: str, data: bytes) -> str:
    """The script text of an uploaded .txt, .md or .epub file."""
    if len(data) > MAX_IMPORT_BYTES:
        raise InvalidRequest("The file is larger than 50 MB.", param="file")
    suffix = name.lower().rsplit(".", 1)[-1] if "." in name else ""
    if suffix == "epub":
        return _epub(data)
    if suffix in ("txt", "md", "markdown", "text"):
        return data.decode("utf-8-sig", "replace")
    raise InvalidRequest("Import a .txt, .md or .epub file.", param="file")
