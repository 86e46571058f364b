"""File names from clients: the name shown, and the name used inside object names.

A client's file name can be anything its file system allows, or anything at all: any
length, any script, control characters, path separators. Two names come from it:

- the display name (:func:`display_name`): the base name, NFC-normalized, control and
  path characters replaced by ``_``, at most :data:`MAX_DISPLAY_CHARS` characters
  (the extension kept). It is what the API lists, what citations show, and the
  document's key in its knowledge base.
- the object-name part (:func:`object_part`): the display name when it fits in
  :data:`OBJECT_PART_BYTES` of UTF-8, else its start cut on a character boundary, a
  hash of the whole name (so two long names that share their start stay distinct)
  and the extension. Object stores and the file systems behind emulators and sync
  tools bound a path segment (commonly 255 bytes), however long GCS allows names.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from shared.errors import InvalidInputError

MAX_DISPLAY_CHARS = 255
OBJECT_PART_BYTES = 200
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\\ud800-\udfff]")
# An extension worth keeping when a name is cut: short, letters and digits.
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,10}$")
_HASH_CHARS = 12


def display_name(raw: str | None) -> str:
    """The name shown for an uploaded file.

    Args:
        raw: The name the client sent (a path is cut to its base name).

    Returns:
        The base name, NFC-normalized, without control or path characters, at most
        :data:`MAX_DISPLAY_CHARS` characters with its extension kept.

    Raises:
        InvalidInputError: ``invalid_filename`` when nothing of a name is left.
    """
    name = unicodedata.normalize("NFC", (raw or "").replace("\\", "/").rsplit("/", 1)[-1])
    name = _UNSAFE.sub("_", name).strip().strip(".")
    if not name:
        raise InvalidInputError("the file needs a name", code="invalid_filename")
    if len(name) <= MAX_DISPLAY_CHARS:
        return name
    extension = _extension(name)
    return name[: MAX_DISPLAY_CHARS - len(extension)].rstrip() + extension


def object_part(name: str, budget: int = OBJECT_PART_BYTES) -> str:
    """``name`` as the last segment of an object name: at most ``budget`` bytes of UTF-8.

    Args:
        name: A display name (:func:`display_name`).
        budget: The most bytes the segment may take.

    Returns:
        ``name`` itself if it fits, else its start, ``-``, a hash of the whole name
        and its extension.
    """
    if len(name.encode()) <= budget:
        return name
    extension = _extension(name)
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    room = budget - len(extension) - len(digest) - 1
    stem = name[: len(name) - len(extension)].encode()[:room].decode(errors="ignore")
    return f"{stem}-{digest}{extension}"


def _extension(name: str) -> str:
    found = _EXTENSION.search(name)
    return found.group() if found and found.start() > 0 else ""
