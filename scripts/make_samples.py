"""Writes ``samples/employee-handbook.docx``, the sample set's Word document.

The handbook is generated rather than hand-edited so its text can be reviewed in this
file; run ``.venv/bin/python -m scripts.make_samples`` after changing it. The company and
its policies are fictional.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
HANDBOOK = SAMPLES / "employee-handbook.docx"

# A fixed date, so regenerating the file without changes keeps its properties.
WRITTEN = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)

SECTIONS: list[tuple[str, list[str]]] = [
    (
        "Working hours and remote work",
        [
            "Core hours at Northwind Analytics are 10:00 to 15:00 in your local time zone;"
            " outside them you plan your own day with your team.",
            "Employees may work remotely up to three days per week. Fully remote"
            " arrangements need the written approval of your manager and of People"
            " Operations.",
        ],
    ),
    (
        "Paid time off",
        [
            "Every full-time employee receives 27 days of paid vacation per calendar year,"
            " in addition to public holidays. Part-time employees receive a pro-rated"
            " share.",
            "Up to five unused vacation days carry over into the next year; carried-over"
            " days expire on March 31.",
            "Sick leave is not counted against vacation. From the fourth consecutive sick"
            " day a doctor's note is required.",
        ],
    ),
    (
        "Parental leave",
        [
            "Northwind Analytics offers 18 weeks of fully paid parental leave to every"
            " parent, birth or adoptive, to be taken within the first year.",
        ],
    ),
    (
        "Equipment and expenses",
        [
            "Each employee receives a laptop, which is replaced every three years, and a"
            " one-time home-office allowance of 600 euros.",
            "Expense reports must be submitted in the expense tool within 30 days of the"
            " purchase, with the receipt attached.",
        ],
    ),
]

CONTACTS = [
    ("Vacation and leave", "People Operations", "people@northwind.example"),
    ("Expenses", "Finance", "finance@northwind.example"),
    ("Laptops and accounts", "IT Help Desk", "help@northwind.example"),
]


def write_handbook(path: Path = HANDBOOK) -> Path:
    """Write the employee handbook as a DOCX with headings, paragraphs and a table.

    Args:
        path: Where to write it.

    Returns:
        The path written.
    """
    from docx import Document

    document = Document()
    document.core_properties.title = "Northwind Analytics Employee Handbook"
    document.core_properties.author = "People Operations"
    document.core_properties.created = WRITTEN
    document.core_properties.modified = WRITTEN
    document.add_heading("Northwind Analytics Employee Handbook", level=0)
    document.add_paragraph(
        "This handbook summarises the policies that apply to every employee of Northwind"
        " Analytics. It was last reviewed by People Operations in January 2026."
    )
    for heading, paragraphs in SECTIONS:
        document.add_heading(heading, level=1)
        for text in paragraphs:
            document.add_paragraph(text)
    document.add_heading("Who to contact", level=1)
    table = document.add_table(rows=1, cols=3)
    for cell, title in zip(table.rows[0].cells, ("Topic", "Team", "Email"), strict=True):
        cell.text = title
    for row in CONTACTS:
        for cell, text in zip(table.add_row().cells, row, strict=True):
            cell.text = text
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    return path


if __name__ == "__main__":
    print(write_handbook())
