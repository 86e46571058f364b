"""The metadata filter language of retrieval: validated here, compiled by the scope.

A filter maps document metadata keys to conditions; every condition must hold::

    {"kind": "10-Q",                          # a bare value: equal (JSON containment)
     "year": {"gte": 2023, "lt": 2025},       # numeric range
     "period_end": {"gte": "2024-01-01"},     # date range (ISO dates)
     "ticker": {"in": ["AAPL", "MSFT"]},      # one of
     "reviewed": {"exists": True}}            # the key is present (any value)

A bare value (a scalar, a list or an object without operator keys) keeps the original
meaning of ``metadata`` filters: the document's metadata contains it (``@>``), so the
containment filters callers already send work unchanged. An object whose keys are all
operators is a condition; mixing operators and plain keys in one object is an error.

:func:`parse_metadata_filter` validates a filter (keys, operators, value types, size)
into a :class:`MetadataFilter`; ``shared.store.scope`` compiles that into SQL with
bound parameters only.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from shared.errors import InvalidInputError

RangeOperator = Literal["gt", "gte", "lt", "lte"]
Operator = Literal["in", "exists", "gt", "gte", "lt", "lte"]
ValueKind = Literal["json", "number", "date", "bool"]

MAX_KEYS = 32
"""Most keys one filter may name."""
MAX_KEY_CHARS = 128
MAX_IN_VALUES = 100
MAX_STRING_CHARS = 512
MAX_FILTER_BYTES = 8192
"""Longest filter, as JSON (a document's metadata is at most that long too)."""

RANGE_OPERATORS: tuple[RangeOperator, ...] = ("gt", "gte", "lt", "lte")
OPERATORS = frozenset({"eq", "in", "exists", *RANGE_OPERATORS})

Number = StrictInt | Annotated[StrictFloat, AllowInfNan(False)]
Scalar = Annotated[StrictStr, Field(max_length=MAX_STRING_CHARS)] | Number | StrictBool
Bound = Number | dt.date


class Condition(BaseModel):
    """The operators of one key's condition (at least one; all must hold)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    eq: Scalar | None = None
    in_: list[Scalar] | None = Field(None, alias="in", min_length=1, max_length=MAX_IN_VALUES)
    gt: Bound | None = None
    gte: Bound | None = None
    lt: Bound | None = None
    lte: Bound | None = None
    exists: StrictBool | None = None

    @model_validator(mode="after")
    def _one_kind_of_range(self) -> Condition:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError("a condition needs at least one operator with a value")
        bounds = [getattr(self, op) for op in RANGE_OPERATORS if getattr(self, op) is not None]
        kinds = {"date" if isinstance(bound, dt.date) else "number" for bound in bounds}
        if len(kinds) > 1:
            raise ValueError("a range's bounds must be all numbers or all ISO dates")
        return self


@dataclass(frozen=True)
class Comparison:
    """One compiled operator on one key.

    Attributes:
        key: The metadata key.
        op: The operator (``eq`` is folded into :attr:`MetadataFilter.contains`).
        value: The operand as the SQL receives it: JSON text for ``in``, a decimal
            string for numbers, an ISO date for dates, a bool for ``exists``.
        kind: How the operand compares.
    """

    key: str
    op: Operator
    value: str | bool
    kind: ValueKind


@dataclass(frozen=True)
class MetadataFilter:
    """A validated metadata filter.

    Attributes:
        contains: Key/values the metadata must contain (bare values and ``eq``).
        comparisons: The other conditions, in the order given.
    """

    contains: dict[str, Any] = field(default_factory=dict)
    comparisons: tuple[Comparison, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.contains or self.comparisons)


def _is_condition(value: Any) -> bool:
    """Whether ``value`` is an operator object (else a bare value to contain)."""
    if not isinstance(value, dict) or not value:
        return False
    operators = [key in OPERATORS for key in value]
    if any(operators) and not all(operators):
        raise InvalidInputError(
            f"a condition mixes operators and keys: {sorted(value)}; operators are"
            f" {', '.join(sorted(OPERATORS))}",
            code="invalid_filter",
        )
    return all(operators)


def _bound_text(bound: int | float | dt.date) -> tuple[str, ValueKind]:
    if isinstance(bound, dt.date):
        return bound.isoformat(), "date"
    return repr(bound), "number"


def _comparisons(key: str, condition: Condition) -> list[Comparison]:
    found: list[Comparison] = []
    if condition.in_ is not None:
        found.append(Comparison(key, "in", json.dumps(condition.in_), "json"))
    for op in RANGE_OPERATORS:
        bound = getattr(condition, op)
        if bound is not None:
            text, kind = _bound_text(bound)
            found.append(Comparison(key, op, text, kind))
    if condition.exists is not None:
        found.append(Comparison(key, "exists", condition.exists, "bool"))
    return found


def _check_size(raw: Mapping[str, Any]) -> None:
    if len(raw) > MAX_KEYS:
        raise InvalidInputError(
            f"a metadata filter may name at most {MAX_KEYS} keys", code="invalid_filter"
        )
    try:
        size = len(json.dumps(raw, allow_nan=False).encode())
    except (TypeError, ValueError) as error:
        raise InvalidInputError(
            f"metadata filter is not JSON: {error}", code="invalid_filter"
        ) from error
    if size > MAX_FILTER_BYTES:
        raise InvalidInputError(
            f"a metadata filter may be at most {MAX_FILTER_BYTES:,} bytes of JSON",
            code="invalid_filter",
        )
    for key in raw:
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_CHARS:
            raise InvalidInputError(
                f"metadata filter keys are strings of 1 to {MAX_KEY_CHARS} characters",
                code="invalid_filter",
            )


def _message(key: str, error: ValidationError) -> str:
    """One line saying which key and operator are wrong (not pydantic's union branches)."""
    first = error.errors()[0]
    loc = first.get("loc", ())
    operator = str(loc[0]) if loc else ""
    if operator in RANGE_OPERATORS:
        return f"metadata filter {key}.{operator}: must be a number or an ISO date (YYYY-MM-DD)"
    if operator in ("eq", "in") and first.get("type") != "too_short":
        return f"metadata filter {key}.{operator}: values are strings, numbers or booleans"
    where = f"{key}.{operator}" if operator else key
    return f"metadata filter {where}: {first.get('msg')}"


def parse_metadata_filter(raw: Mapping[str, Any] | None) -> MetadataFilter:
    """Validate a metadata filter and split it into containment and comparisons.

    Args:
        raw: The filter as the request gave it (``None`` or empty: no filter).

    Returns:
        The validated filter.

    Raises:
        InvalidInputError: ``invalid_filter``: too many keys, too long, an unknown
            operator, a value of the wrong type (a range bound that is neither a
            number nor an ISO date, a non-boolean ``exists``), an empty ``in`` list.
    """
    if not raw:
        return MetadataFilter()
    if not isinstance(raw, Mapping):
        raise InvalidInputError("metadata filter must be a JSON object", code="invalid_filter")
    _check_size(raw)
    contains: dict[str, Any] = {}
    comparisons: list[Comparison] = []
    for key, value in raw.items():
        if not _is_condition(value):
            contains[key] = value
            continue
        try:
            condition = Condition.model_validate(value)
        except ValidationError as error:
            raise InvalidInputError(_message(key, error), code="invalid_filter") from error
        if condition.eq is not None:
            contains[key] = condition.eq
        comparisons.extend(_comparisons(key, condition))
    return MetadataFilter(contains=contains, comparisons=tuple(comparisons))
