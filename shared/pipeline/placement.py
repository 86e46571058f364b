"""Which knowledge base an operator's object belongs to, or why it belongs to none.

An object dropped into the uploads bucket names its workspace and knowledge base by its
path (``<workspace>/<knowledge-base>/<path...>``) or its metadata (see
:func:`shared.paths.dropped_object`). The workspace must exist: an object is never
placed in a workspace it did not name, nor does a drop create a workspace. The one
exception is the configured default workspace, which exists by configuration and is
created when first named. The knowledge base is created on first use inside the
workspace, with the deployment's defaults (model, chunking), as the API creates one
given only a name.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import ConflictError, DomainError, RefusedObjectError
from shared.ids import is_uuid
from shared.knowledge_bases import KnowledgeBase, create_knowledge_base, find_knowledge_base
from shared.paths import DroppedObject, dropped_object
from shared.runtime import Runtime
from shared.storage import ObjectInfo
from shared.store import access as access_store
from shared.store import knowledge_bases as kb_store

BUCKET_PRINCIPAL = "bucket"


@dataclass(frozen=True)
class Placement:
    """The knowledge base an object belongs to and the document key inside it."""

    kb: KnowledgeBase
    source_key: str

    @property
    def filename(self) -> str:
        """The object's base name."""
        return self.source_key.rsplit("/", 1)[-1]


def place_object(runtime: Runtime, obj: ObjectInfo) -> Placement | None:
    """The knowledge base a finalized object enters (created on first use).

    Returns:
        Its placement, or None if it is no operator's object, or it is gone and its
        knowledge base with it (an event that arrives after a delete).

    Raises:
        RefusedObjectError: The object names no existing workspace, or no knowledge
            base that exists or could be created there.
    """
    dropped = dropped_object(obj.name, obj.metadata)
    if dropped is None:
        return None
    _require_workspace(runtime, dropped)
    kb = find_knowledge_base(runtime.database, dropped.kb_ref, dropped.workspace)
    if kb is None and runtime.objects.stat(obj.bucket, obj.name) is None:
        # The object is gone (its knowledge base was deleted meanwhile): a late event
        # must not bring the knowledge base back.
        return None
    if kb is None:
        kb = _create(runtime, dropped)
    return Placement(kb, dropped.source_key)


def find_placement(runtime: Runtime, obj: ObjectInfo) -> Placement | None:
    """The knowledge base a deleted object was in, by the same rule; nothing is created.

    Returns:
        Its placement, or None if the object names no existing knowledge base.

    Raises:
        RefusedObjectError: The object names no workspace and knowledge base.
    """
    dropped = dropped_object(obj.name, obj.metadata)
    if dropped is None:
        return None
    kb = find_knowledge_base(runtime.database, dropped.kb_ref, dropped.workspace)
    return None if kb is None else Placement(kb, dropped.source_key)


def _require_workspace(runtime: Runtime, dropped: DroppedObject) -> None:
    database = runtime.database
    if dropped.workspace == runtime.settings.default_workspace:
        with database.transaction() as session:
            kb_store.ensure_workspace(session, dropped.workspace)
        return
    if access_store.workspace_id(database, dropped.workspace) is None:
        raise RefusedObjectError(
            f"workspace {dropped.workspace!r} does not exist",
            code="unknown_workspace",
            workspace=dropped.workspace,
            knowledge_base=dropped.kb_ref,
        )


def _create(runtime: Runtime, dropped: DroppedObject) -> KnowledgeBase:
    if is_uuid(dropped.kb_ref):
        raise _refused(dropped, f"no knowledge base with id {dropped.kb_ref}", "unknown_kb")
    try:
        return create_knowledge_base(
            runtime.database,
            runtime.settings,
            name=dropped.kb_ref,
            principal=BUCKET_PRINCIPAL,
            workspace=dropped.workspace,
        )
    except ConflictError:
        # Created meanwhile by a concurrent event for the same folder.
        kb = find_knowledge_base(runtime.database, dropped.kb_ref, dropped.workspace)
        if kb is None:
            raise
        return kb
    except DomainError as error:
        code = "invalid_knowledge_base_name" if error.code == "invalid_name" else error.code
        raise _refused(dropped, str(error), code) from error


def _refused(dropped: DroppedObject, message: str, code: str) -> RefusedObjectError:
    return RefusedObjectError(
        message, code=code, workspace=dropped.workspace, knowledge_base=dropped.kb_ref
    )
