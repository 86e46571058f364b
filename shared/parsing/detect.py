"""Content-type detection from the bytes themselves (never trusting the file name).

Uploaders lie and file names get mangled, so the type is decided by magic numbers and
content. The file name is consulted only to break a tie between Markdown and plain
text, where both readings of the same bytes are legitimate.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass

from shared.errors import CorruptContentError, EncryptedContentError, UnsupportedContentError

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HTML = "text/html"
MARKDOWN = "text/markdown"
PLAIN = "text/plain"
PNG = "image/png"
JPEG = "image/jpeg"
TIFF = "image/tiff"
WEBP = "image/webp"
IMAGE_TYPES = frozenset({PNG, JPEG, TIFF, WEBP})
"""Images Ragline reads by OCR (:mod:`shared.parsing.image`)."""

SUPPORTED_HINT = (
    "supported types are PDF, DOCX, HTML, Markdown, plain text and PNG, JPEG, TIFF or WebP images"
)

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")

# Images read by OCR, by their magic numbers (WebP is a RIFF container: see _image_kind).
_IMAGE_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"\xff\xd8\xff", JPEG),
    (b"II*\x00", TIFF),
    (b"MM\x00*", TIFF),
)

# Magic numbers of common binaries, so a rejection can say what the file looks like.
_BINARY_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"\x00\x00\x01\x00", "an ICO image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"(\xb5/\xfd", "a zstd archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x7fELF", "an executable (ELF)"),
    (b"MZ", "an executable (Windows)"),
    (b"\xca\xfe\xba\xbe", "a Java class or Mach-O binary"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"OggS", "an Ogg media file"),
    (b"ID3", "an MP3 audio file"),
    (b"fLaC", "a FLAC audio file"),
    (b"\x1aE\xdf\xa3", "a Matroska/WebM video"),
    (b"wOFF", "a web font"),
    (b"wOF2", "a web font"),
)

# Text-based formats we do not parse; their signatures are specific enough to check
# before decoding (unlike "BM" or "MZ", which ordinary text can start with).
_TEXTUAL_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"%!PS", "a PostScript document"),
    (b"{\\rtf", "an RTF document"),
)

# Members that identify other ZIP-based formats, for a helpful rejection message.
_ZIP_KINDS: tuple[tuple[str, str], ...] = (
    ("xl/workbook.xml", "an Excel workbook (XLSX)"),
    ("ppt/presentation.xml", "a PowerPoint presentation (PPTX)"),
    ("META-INF/container.xml", "an EPUB e-book"),
    ("META-INF/MANIFEST.MF", "a Java archive (JAR)"),
    ("AndroidManifest.xml", "an Android package (APK)"),
)

_HTML_START = re.compile(r"^(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)[\s>]", re.I | re.S)
_HTML_TAGS = re.compile(
    r"<(html|head|body|div|p|span|a|table|tr|td|ul|ol|li|h[1-6]|br|meta|title|script|style"
    r"|section|article|main|nav|header|footer|link|img|form)\b",
    re.I,
)
_MD_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+\S", re.M)
_MD_FENCE = re.compile(r"^ {0,3}(```|~~~)", re.M)
_MD_TABLE_RULE = re.compile(
    r"^ {0,3}\|?[ \t]*:?-{3,}:?[ \t]*(\|[ \t]*:?-{3,}:?[ \t]*)+\|?[ \t]*$", re.M
)
_MD_LIST = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+\S", re.M)
_MD_LINK = re.compile(r"\[[^\]\n]+\]\((?:https?://|/|#|\.)[^)\s]*\)")
_MD_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd")
_TEXT_SUFFIXES = (".txt", ".text", ".log")


@dataclass(frozen=True)
class Detection:
    """The outcome of sniffing a document's bytes.

    Attributes:
        content_type: The MIME type.
        text: The decoded text for text formats (HTML, Markdown, plain), else ``None``.
        encoding: The codec the text was decoded with, for text formats.
    """

    content_type: str
    text: str | None = None
    encoding: str | None = None


def detect_content_type(data: bytes) -> str:
    """Return the MIME type of a document, judged from its bytes only.

    Args:
        data: The document's bytes.

    Returns:
        One of ``application/pdf``, the DOCX MIME type, ``text/html``,
        ``text/markdown``, ``text/plain`` or an image type of :data:`IMAGE_TYPES`.

    Raises:
        UnsupportedContentError: For any other kind of file (the message names it).
        EncryptedContentError: For a password-protected Office document.
        CorruptContentError: For a damaged ZIP container.
    """
    return sniff(data).content_type


def sniff(data: bytes, filename: str | None = None) -> Detection:
    """Detect the type and, for text formats, decode the text.

    Args:
        data: The document's bytes.
        filename: Used only to choose between Markdown and plain text when the
            content alone does not decide.

    Returns:
        The detection result.

    Raises:
        UnsupportedContentError: For unsupported file types.
        EncryptedContentError: For an encrypted Office document.
        CorruptContentError: For a damaged ZIP container.
    """
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n\f")
    if head.startswith(b"%PDF-"):
        return Detection(PDF)
    if data.startswith(_ZIP_MAGICS):
        return Detection(_zip_kind(data))
    if data.startswith(_OLE_MAGIC):
        raise _ole_error(data)
    image = _image_kind(data)
    if image is not None:
        return Detection(image)
    text, encoding = decode_text(data)
    return Detection(_text_kind(text, filename), text, encoding)


def _image_kind(data: bytes) -> str | None:
    """The image type of :data:`IMAGE_TYPES` the bytes start with, if any."""
    for magic, kind in _IMAGE_MAGICS:
        if data.startswith(magic):
            return kind
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return WEBP
    return None


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode bytes as text: BOM-marked UTF-8/16/32, UTF-8, then Windows-1252/Latin-1.

    Windows-1252 is a deliberate fallback: legacy text exported from Windows tools is
    common and would otherwise be rejected; it is accepted only when nearly free of
    control characters, so binary data still fails.

    Args:
        data: The raw bytes.

    Returns:
        The text and the codec name.

    Raises:
        UnsupportedContentError: If the bytes look binary or match a known binary type.
    """
    for bom, codec in (
        (b"\xef\xbb\xbf", "utf-8-sig"),
        (b"\xff\xfe\x00\x00", "utf-32"),
        (b"\x00\x00\xfe\xff", "utf-32"),
        (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return data.decode(codec), codec.removesuffix("-sig")
            except UnicodeDecodeError as exc:
                raise UnsupportedContentError(
                    f"File starts with a {codec.upper()} byte-order mark but is not valid "
                    f"{codec.upper()} text; {SUPPORTED_HINT}",
                    code="undecodable_text",
                ) from exc
    for magic, kind in _TEXTUAL_MAGICS:
        if data.startswith(magic):
            raise _unsupported(kind)
    if b"\x00" in data[:65536]:
        raise _binary_error(data)
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    # Not valid UTF-8. If it still holds well-formed multi-byte sequences it is UTF-8
    # with a few damaged bytes (keep it, marking the damage with U+FFFD); otherwise it is
    # most likely legacy single-byte text.
    lenient = data.decode("utf-8", errors="replace")
    damaged = lenient.count("\ufffd")
    multibyte = sum(1 for ch in lenient[:65536] if ord(ch) > 127) - damaged
    if multibyte > 0 and damaged <= max(len(lenient) // 1000, 8):
        text, encoding = lenient, "utf-8"
    else:
        try:
            text, encoding = data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            # Five bytes are undefined in Windows-1252; Latin-1 maps every byte.
            text, encoding = data.decode("latin-1"), "latin-1"
    sample = text[:65536]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\n\r\f")
    if controls > len(sample) / 100:
        raise _binary_error(data)
    return text, encoding


def _unsupported(kind: str) -> UnsupportedContentError:
    return UnsupportedContentError(
        f"File looks like {kind}, which cannot be parsed; {SUPPORTED_HINT}",
        code="unsupported_type",
    )


def _binary_error(data: bytes) -> UnsupportedContentError:
    for magic, kind in _BINARY_MAGICS:
        if data.startswith(magic):
            return _unsupported(kind)
    if data[4:8] == b"ftyp":
        return _unsupported("an MP4/QuickTime media file")
    if data.startswith(b"RIFF") and data[8:12] in (b"WAVE", b"AVI "):
        return _unsupported("a WAV audio file" if data[8:12] == b"WAVE" else "an AVI video")
    return UnsupportedContentError(
        f"File looks like binary data, not a document; {SUPPORTED_HINT}",
        code="binary_content",
    )


def looks_like_html(text: str) -> bool:
    """Return whether decoded text is an HTML document.

    Args:
        text: The decoded text.

    Returns:
        True for a doctype/``<html>`` start, or a ``<`` start with several HTML tags.
    """
    head = text[:8192].lstrip("\ufeff \t\r\n")
    if _HTML_START.match(head):
        return True
    if not head.startswith("<") or head.startswith("<?xml"):
        return head.startswith("<?xml") and "<html" in head.lower()
    # A fragment such as "<div><p>...": demand two distinct tags, or one that is also
    # closed, so a Markdown file that opens with a stray "<" is not misread.
    tags = {m.group(1).lower() for m in _HTML_TAGS.finditer(head)}
    lowered = head.lower()
    return len(tags) >= 2 or any(f"</{tag}>" in lowered for tag in tags)


def _text_kind(text: str, filename: str | None) -> str:
    if looks_like_html(text):
        return HTML
    head = text[:8192].lstrip("\ufeff \t\r\n")
    if head.startswith("<?xml") or head.startswith("<svg"):
        raise _unsupported("an SVG image" if "<svg" in head else "an XML document")
    sample = text[:200_000]
    strong = bool(_MD_HEADING.search(sample) or _MD_TABLE_RULE.search(sample) or _fenced(sample))
    weak = len(_MD_LIST.findall(sample)) >= 2 or bool(_MD_LINK.search(sample))
    name = (filename or "").lower()
    if strong:
        return MARKDOWN
    if weak:
        # Lists and links appear in plain notes too: an explicit .txt name keeps them plain.
        return PLAIN if name.endswith(_TEXT_SUFFIXES) else MARKDOWN
    return MARKDOWN if name.endswith(_MD_SUFFIXES) else PLAIN


def _fenced(sample: str) -> bool:
    # An opening and a closing fence: a lone ``` line is more likely prose.
    return len(_MD_FENCE.findall(sample)) >= 2


def _zip_kind(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        raise CorruptContentError(
            "File looks like a ZIP-based document (such as DOCX) but the archive is damaged "
            "or truncated; upload the original file again",
            code="corrupt_zip",
        ) from exc
    if "word/document.xml" in names:
        return DOCX
    kind = next((kind for member, kind in _ZIP_KINDS if member in names), "a ZIP archive")
    if "mimetype" in names and "content.xml" in names:
        kind = "an OpenDocument file (ODT/ODS/ODP)"
    raise _unsupported(kind)


def _ole_error(data: bytes) -> Exception:
    # Directory entry names in a compound file are UTF-16LE; an encrypted OOXML document
    # is a compound file holding an "EncryptedPackage" stream.
    if "EncryptedPackage".encode("utf-16-le") in data or b"EncryptedPackage" in data:
        return EncryptedContentError(
            "Office document is password-protected; remove the password and upload again",
            code="office_encrypted",
        )
    if "WordDocument".encode("utf-16-le") in data:
        kind = "a legacy Word document (.doc)"
    else:
        kind = "a legacy Microsoft Office file (.doc/.xls/.ppt)"
    return UnsupportedContentError(
        f"File looks like {kind}, which cannot be parsed; save it as .docx or PDF and upload again",
        code="legacy_office",
    )
