"""Client file names: the display name and the bounded object-name part."""

from __future__ import annotations

import unicodedata

import pytest

from shared.errors import InvalidInputError
from shared.filenames import MAX_DISPLAY_CHARS, OBJECT_PART_BYTES, display_name, object_part
from shared.paths import upload_object_name


def test_a_plain_name_stays_as_it_is() -> None:
    assert display_name("report.pdf") == "report.pdf"
    assert object_part("report.pdf") == "report.pdf"


def test_the_display_name_is_the_nfc_base_name_without_controls() -> None:
    decomposed = unicodedata.normalize("NFD", "café.md")
    assert display_name(f"C:\\Users\\me\\{decomposed}") == "café.md"
    assert display_name("../../etc/pass\x00wd\x1b.txt") == "pass_wd_.txt"
    with pytest.raises(InvalidInputError) as raised:
        display_name(" ../ ")
    assert raised.value.code == "invalid_filename"


def test_a_long_display_name_keeps_its_extension() -> None:
    name = display_name("名" * 400 + ".docx")
    assert len(name) == MAX_DISPLAY_CHARS
    assert name.endswith("名.docx")


@pytest.mark.parametrize("stem", ["ß" * 400, "😀" * 300, "a" * 1000, "名" * 70])
def test_a_long_name_is_cut_to_the_byte_budget_with_its_extension(stem: str) -> None:
    name = display_name(stem + ".pdf")
    part = object_part(name)
    assert len(part.encode()) <= OBJECT_PART_BYTES
    assert part.endswith(".pdf")
    assert part.startswith(stem[:10])
    assert object_part(name) == part, "the same name gives the same part"


def test_two_long_names_sharing_their_start_stay_distinct() -> None:
    first, second = "ß" * 300 + "-one.md", "ß" * 300 + "-two.md"
    assert object_part(first) != object_part(second)


def test_upload_object_names_are_bounded() -> None:
    name = upload_object_name("d" * 36, "k" * 16, display_name("😀" * 1000))
    assert len(name.rsplit("/", 1)[-1].encode()) <= OBJECT_PART_BYTES
