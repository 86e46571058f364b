"""Reading the dates documents carry in their own format, as ISO 8601.

For now the PDF metadata date (``CreationDate``, ``ModDate``); :mod:`shared.parsing.pdf_reading`
reads the value through PDFium, this module only parses the string, so it needs no PDFium.
"""

from __future__ import annotations

import datetime as dt
import re

# A PDF date: D:YYYYMMDDHHmmSS, then Z or +HH'mm' (everything after the year optional).
_PDF_DATE = re.compile(
    r"^(?:D:)?(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:([Zz+-])(\d{2})?'?(\d{2})?'?)?"
)


def parse_pdf_date(value: str) -> str | None:
    """A PDF metadata date (``D:20230728100829+00'00'``) as ISO 8601, or None.

    Args:
        value: The date string as stored; everything after the year is optional, and a
            missing time zone reads as UTC.

    Returns:
        The date and time with its offset (``2023-07-28T10:08:29+00:00``), or ``None``
        when the string is not a date or names an impossible one (month 13).
    """
    match = _PDF_DATE.match(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, sign, tz_hours, tz_minutes = match.groups()
    try:
        offset = dt.timedelta(hours=int(tz_hours or 0), minutes=int(tz_minutes or 0))
        zone = dt.timezone(-offset if sign == "-" else offset)
        moment = dt.datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=zone,
        )
    except ValueError:
        return None
    return moment.isoformat()
