"""The retrieval scope, compiled into SQL in one place.

Every read a question makes (the chunk arms of the hybrid search, the documents routing
reads, the active versions the BM25 statistics and the scope's size come from, the
knowledge bases and their embedding models) is restricted by the same scope: the
knowledge bases asked for, inside the caller's workspace, active versions only, and
the optional document and metadata filters. :func:`compile_scope` is the one function
that turns a :class:`Scope` into those predicates, so the identity issue adds the
caller's access here, once, for every read path.

The predicates' exact shape is tuned for the planner (docs/benchmarks.md, "Retrieval
latency and recall"); each fragment's docstring says why it is written as it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.auth import Principal
from shared.filters import Comparison, MetadataFilter, parse_metadata_filter


def visible_document(alias: str) -> str:
    """The predicate that a document ``alias`` may be read at all: it is not archived.

    Approval needs no predicate of its own: only approved versions are ever active.
    """
    return f"{alias}.archived_at IS NULL"


@dataclass(frozen=True)
class Scope:
    """What a search may read.

    Attributes:
        kb_ids: Knowledge bases asked for (and readable by the caller).
        workspace: The caller's workspace (name); knowledge bases outside it are
            invisible even if their ids are given.
        document_ids: Only these documents, if given (an empty list matches none).
        metadata: Only documents whose metadata passes this filter (the language of
            ``shared.filters``: bare values are contained, operator objects compare),
            if given and not empty.
        reader: The caller's principal id (their grants are looked up by it).
        granted_only: The caller reads only the knowledge bases granted to them (a
            limited membership): every knowledge base in scope must carry a grant.
    """

    kb_ids: Sequence[str]
    workspace: str
    document_ids: Sequence[str] | None = None
    metadata: Mapping[str, Any] | None = None
    reader: str | None = None
    granted_only: bool = False


@dataclass(frozen=True)
class ScopeSql:
    """A scope's SQL fragments and the parameters they name.

    Every fragment names the same parameters (``:kbs``, ``:ws``, and ``:docs``,
    ``:meta``, ``:mk<i>``/``:mv<i>`` when the scope has those filters); pass
    :attr:`params` with the statement.

    Attributes:
        params: Values for the fragments' named parameters.
        metadata: The validated metadata filter the fragments apply.
    """

    scope: Scope
    params: dict[str, Any]
    metadata: MetadataFilter = field(default_factory=MetadataFilter)

    def chunks(self) -> str:
        """The ``WHERE`` clause that restricts ``chunks c`` to the scope.

        Written so the planner's row estimates stay right (a join on the active
        version, or a per-row workspace check, made it expect a few rows out of 100k,
        and so scan them all): visibility is a semi-join on the active versions, and
        the workspace check runs once for the statement (every knowledge base asked for
        must be the caller's). Document and metadata filters name the active versions,
        so a selective filter reaches its chunks through the (version_id, ordinal)
        index.
        """
        where = (
            " WHERE c.kb_id = ANY(CAST(:kbs AS uuid[]))"
            " AND c.version_id IN (SELECT d.active_version_id FROM documents d"
            f" WHERE d.kb_id = ANY(CAST(:kbs AS uuid[])) AND {visible_document('d')})"
            " AND (SELECT count(*) FROM knowledge_bases k JOIN workspaces w"
            " ON w.id = k.workspace_id WHERE w.name = :ws AND k.id = ANY(CAST(:kbs AS uuid[]))"
            f"{self._access('k')}) = cardinality(CAST(:kbs AS uuid[]))"
        )
        if self.scope.document_ids is not None:
            where += (
                " AND c.version_id IN (SELECT f.active_version_id FROM documents f"
                " WHERE f.id = ANY(CAST(:docs AS uuid[])))"
            )
        if self.metadata:
            where += (
                " AND c.version_id IN (SELECT f.active_version_id FROM documents f"
                f" WHERE f.kb_id = ANY(CAST(:kbs AS uuid[])){self._metadata('f')})"
            )
        return where

    def active_versions(self, alias: str = "d") -> str:
        """``FROM`` and ``WHERE`` of the scope's documents joined to their active versions.

        The documents are ``alias``, their active versions ``v``. No workspace check:
        the statements reading these (the BM25 statistics, the scope's size) only
        size the search, and the chunk arms they serve check the workspace (a check
        here cost a join per document for no row it could remove).
        """
        return (
            f" FROM documents {alias} JOIN document_versions v"
            f" ON v.id = {alias}.active_version_id"
            f" WHERE {alias}.kb_id = ANY(CAST(:kbs AS uuid[])) AND {visible_document(alias)}"
            + self._document_filters(alias)
        )

    def workspace_documents(self) -> str:
        """``FROM`` and ``WHERE`` of the scope's documents, checked per row against the workspace.

        The documents are ``d``, their active versions ``v``, knowledge bases ``k``,
        workspace ``w``. For reads that return documents themselves (routing), so the
        workspace is checked on each row.
        """
        return (
            " FROM documents d JOIN document_versions v ON v.id = d.active_version_id"
            " JOIN knowledge_bases k ON k.id = d.kb_id JOIN workspaces w ON w.id = k.workspace_id"
            " WHERE d.kb_id = ANY(CAST(:kbs AS uuid[])) AND w.name = :ws"
            f" AND {visible_document('d')}" + self._access("k") + self._document_filters("d")
        )

    def knowledge_bases(self) -> str:
        """``FROM`` and ``WHERE`` of the scope's knowledge bases ``k`` (workspace ``w``)."""
        return (
            " FROM knowledge_bases k JOIN workspaces w ON w.id = k.workspace_id"
            " WHERE k.id = ANY(CAST(:kbs AS uuid[])) AND w.name = :ws" + self._access("k")
        )

    def _access(self, alias: str) -> str:
        """The caller's access to the knowledge bases ``alias``: their grants, if limited.

        Members who see every knowledge base of the workspace need no predicate beyond
        the workspace's; a limited member's knowledge bases must each be granted.
        """
        if not self.scope.granted_only:
            return ""
        return _granted(alias, "reader")

    def _document_filters(self, alias: str) -> str:
        filters = ""
        if self.scope.document_ids is not None:
            filters += f" AND {alias}.id = ANY(CAST(:docs AS uuid[]))"
        return filters + self._metadata(alias)

    def _metadata(self, alias: str) -> str:
        """The metadata filter's predicates on documents ``alias`` (each one ``AND ...``).

        Containment keeps ``@>`` (the documents' GIN-indexable form); each comparison
        names its key and operand as parameters ``:mk<i>``/``:mv<i>``, never as text.
        """
        predicates = ""
        if self.metadata.contains:
            predicates += f" AND {alias}.metadata @> CAST(:meta AS jsonb)"
        for index, comparison in enumerate(self.metadata.comparisons):
            predicates += " AND " + _comparison_sql(f"{alias}.metadata", comparison, index)
        return predicates


_RANGE_SQL = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _comparison_sql(column: str, comparison: Comparison, index: int) -> str:
    """One comparison on a jsonb ``column``, with its key and operand as parameters.

    A value of another type than the operand's never matches and never fails the
    statement: the cast sits behind a type check in a ``CASE`` (a ``WHERE`` may
    evaluate its conjuncts in any order, a ``CASE`` may not). Dates compare by the
    first ten characters, so ISO timestamps compare by their day.
    """
    key = f"CAST(:mk{index} AS text)"
    value = f"{column} -> {key}"
    if comparison.op == "exists":
        return f"({value}) IS {'NOT ' if comparison.value else ''}NULL"
    if comparison.op == "in":
        return f"({value}) IN (SELECT jsonb_array_elements(CAST(:mv{index} AS jsonb)))"
    operator = _RANGE_SQL[comparison.op]
    if comparison.kind == "number":
        typed = (
            f"CASE WHEN jsonb_typeof({value}) = 'number'"
            f" THEN CAST({column} ->> {key} AS numeric) END"
        )
        return f"{typed} {operator} CAST(:mv{index} AS numeric)"
    day = f"left({column} ->> {key}, 10)"
    typed = (
        f"CASE WHEN jsonb_typeof({value}) = 'string' AND pg_input_is_valid({day}, 'date')"
        f" THEN CAST({day} AS date) END"
    )
    return f"{typed} {operator} CAST(:mv{index} AS date)"


def _granted(alias: str, reader_param: str) -> str:
    """The knowledge bases ``alias`` restricted to those granted to ``:reader_param``."""
    return (
        f" AND {alias}.id IN (SELECT g.kb_id FROM kb_grants g WHERE g.principal = :{reader_param})"
    )


def readable_knowledge_bases_sql(principal: Principal, reader_param: str = "principal") -> str:
    """A subquery of the ids of the knowledge bases ``principal`` may read now.

    For reads outside a search that carry knowledge-base ids of their own (chat
    history): they are checked against the caller's access when read, not when
    written, so a revoked grant or a removed membership hides them at once. The rule
    is the retrieval scope's: every knowledge base of the workspace for members who
    read them all, only the granted ones for a limited member, none for a non-member.

    Args:
        principal: The caller.
        reader_param: The statement's parameter holding the caller's id; the
            workspace's is ``:ws``.
    """
    if principal.level == 0:
        return "SELECT NULL::uuid WHERE false"
    readable = (
        "SELECT k.id FROM knowledge_bases k JOIN workspaces w ON w.id = k.workspace_id"
        " WHERE w.name = :ws"
    )
    if not principal.reads_every_kb:
        readable += _granted("k", reader_param)
    return readable


def compile_scope(scope: Scope) -> ScopeSql:
    """The SQL fragments and parameters that restrict every read path to ``scope``.

    Args:
        scope: The knowledge bases, workspace and filters of one search.

    Returns:
        Fragments for the chunk arms, the active versions, the routed documents and the
        knowledge bases, all naming the same parameters.

    Raises:
        InvalidInputError: The metadata filter is invalid (see ``shared.filters``).
    """
    # Without duplicates: the chunk arms compare the count of the caller's knowledge
    # bases with the number asked for.
    params: dict[str, Any] = {"kbs": list(dict.fromkeys(scope.kb_ids)), "ws": scope.workspace}
    if scope.document_ids is not None:
        params["docs"] = list(scope.document_ids)
    metadata = parse_metadata_filter(scope.metadata)
    if metadata.contains:
        params["meta"] = json.dumps(metadata.contains)
    for index, comparison in enumerate(metadata.comparisons):
        params[f"mk{index}"] = comparison.key
        if comparison.op != "exists":
            params[f"mv{index}"] = comparison.value
    if scope.granted_only:
        if not scope.reader:
            raise ValueError("a scope limited to grants needs the reader's id")
        params["reader"] = scope.reader
    return ScopeSql(scope=scope, params=params, metadata=metadata)
