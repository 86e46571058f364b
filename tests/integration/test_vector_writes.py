"""The vector write path: embed tasks store exactly the vectors the embedder returned.

``embed_batch`` sends vectors in COPY's binary format (float32 bytes) to a per-connection
staging table and updates the chunks from it. These tests hold that path to exactness
on the real database, on both pg8000 front ends, and through the real pipeline steps.
"""

from __future__ import annotations

import io
import random
import string
import struct
from collections.abc import Iterator, Sequence

import pytest

from scripts.localstack.stack import LocalStack
from shared.db.connection import Database, copy_id_vectors, url_connection_factory
from shared.embeddings import get_embedder
from shared.pipeline.steps import chunk_version, embed_batch, index_version, parse_version
from shared.store.vector_index import distance_sql, index_name
from tests.support.api import Api
from tests.support.db import dbapi_factory
from tests.support.pipeline import Recorder, store_version

# Values whose 7-digit text form is not the float32 they came from, and edge cases.
AWKWARD = [1 / 3, -2 / 7, 0.1, 1e-8, -0.0, 123456.789, 3.4e38, -1.17549435e-38]


def _float32(values: Sequence[float]) -> list[float]:
    """``values`` rounded to float32, as pgvector stores them.

    PostgreSQL prints a ``real`` in its shortest form that reads back as the same
    float32, so rounding what it prints compares stored values bit for bit.
    """
    return list(struct.unpack(f"{len(values)}f", struct.pack(f"{len(values)}f", *values)))


@pytest.fixture(params=["native", "dbapi"])
def database(request: pytest.FixtureRequest, stack: LocalStack) -> Iterator[Database]:
    url = stack.settings.database_url
    factory = url_connection_factory(url) if request.param == "native" else dbapi_factory(url)
    db = Database(factory, size=1)
    yield db
    db.close()


def test_binary_copy_carries_exact_float32_vectors(database: Database) -> None:
    vectors = [AWKWARD, list(reversed(AWKWARD))]
    with database.session() as session:
        session.run("CREATE TEMP TABLE copied (id bigint, embedding vector)")
        session.run(
            "COPY copied (id, embedding) FROM STDIN (FORMAT binary)",
            stream=io.BytesIO(copy_id_vectors([7, 2**40], vectors)),
        )
        rows = session.run("SELECT id, CAST(embedding AS real[]) FROM copied ORDER BY id")
        session.run("DROP TABLE copied")
    assert [row[0] for row in rows] == [7, 2**40]
    assert [_float32(row[1]) for row in rows] == [_float32(vector) for vector in vectors]


def test_copy_rows_must_match_their_ids() -> None:
    with pytest.raises(ValueError):
        copy_id_vectors([1, 2], [[0.5]])
    with pytest.raises(ValueError):
        copy_id_vectors([1], [[]])


def test_embed_tasks_store_exactly_the_embedders_vectors(
    clean_stack: LocalStack, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.config import get_settings

    # Small batches: several tasks in a row reuse one pooled connection's staging table.
    monkeypatch.setattr(get_settings(), "embed_batch_size", 3)
    db = clean_stack.database
    rt = clean_stack.runtime
    kb = Api(clean_stack).create_kb("exact", chunk_tokens=40, chunk_overlap=0)
    text = "# Notes\n\n" + "\n\n".join(
        f"Paragraph {n} is about tide tables, lighthouses and the weather at dawn."
        for n in range(20)
    )
    _, version = store_version(clean_stack, kb["id"], text)
    assert parse_version(rt, version) and chunk_version(rt, version)
    tasks = recorder.tasks_for(version)
    assert len(tasks) >= 3
    for task in tasks:
        assert embed_batch(rt, task)
    # A redelivered task finds nothing left to write and changes nothing.
    assert embed_batch(rt, tasks[0])
    assert index_version(rt, version)

    rows = db.run(
        "SELECT text, CAST(embedding AS real[]), embedding_dim FROM chunks"
        " WHERE version_id = CAST(:v AS uuid) ORDER BY ordinal",
        v=version,
    )
    embedder = get_embedder(kb["embedding_model"], kb["embedding_dim"])
    expected = embedder.embed([row[0] for row in rows])
    assert len(rows) >= 7
    assert [row[2] for row in rows] == [embedder.dimension] * len(rows)
    assert [_float32(row[1]) for row in rows] == [_float32(vector) for vector in expected]
    # The HNSW index (over halfvec) serves them: each chunk is its own nearest neighbour.
    first = rows[0][1]
    nearest_sql = (
        f"SELECT text FROM chunks c WHERE c.embedding_dim = {embedder.dimension}"
        f" ORDER BY {distance_sql(embedder.dimension)} LIMIT 1"
    )
    with db.transaction() as session:
        session.run("SET LOCAL enable_seqscan = off")
        query = "[" + ",".join(repr(x) for x in first) + "]"
        plan = "\n".join(str(row[0]) for row in session.run("EXPLAIN " + nearest_sql, q=query))
        nearest = session.scalar(nearest_sql, q=query)
    assert index_name(embedder.dimension) in plan
    assert nearest == rows[0][0]


def test_embeddings_are_stored_in_their_rows(clean_stack: LocalStack, recorder: Recorder) -> None:
    """A long passage's vector stays in the chunk's row, not in the TOAST table.

    Under pgvector's own storage (EXTERNAL) these rows pass the 2 kB threshold and the
    vector, their largest value, moves out of line: every exact comparison would read
    it back through the TOAST index (migration 0024). The same rows under that storage
    are the control.
    """
    db = clean_stack.database
    rt = clean_stack.runtime
    kb = Api(clean_stack).create_kb("inline", chunk_tokens=400, chunk_overlap=0)
    # Words of random letters: text that does not compress, as a long passage's.
    draw = random.Random(7)
    text = "\n\n".join(
        " ".join(
            "".join(draw.choice(string.ascii_lowercase) for _ in range(draw.randint(3, 9)))
            for _ in range(250)
        )
        for _ in range(4)
    )
    _, version = store_version(clean_stack, kb["id"], text)
    assert parse_version(rt, version) and chunk_version(rt, version)
    for task in recorder.tasks_for(version):
        assert embed_batch(rt, task)
    assert index_version(rt, version)

    counts = db.one(
        "SELECT count(*), count(*) FILTER (WHERE pg_column_toast_chunk_id(embedding) IS NOT NULL),"
        " min(pg_column_size(embedding) + pg_column_size(text))"
        " FROM chunks WHERE version_id = CAST(:v AS uuid) AND embedding IS NOT NULL",
        v=version,
    )
    assert counts is not None
    rows, out_of_line, smallest = counts
    assert rows >= 3
    assert out_of_line == 0
    with db.session() as session:
        session.run("CREATE TEMP TABLE external_chunks (text text, embedding vector)")
        session.run("ALTER TABLE external_chunks ALTER COLUMN embedding SET STORAGE EXTERNAL")
        session.run(
            "INSERT INTO external_chunks SELECT text, embedding FROM chunks"
            " WHERE version_id = CAST(:v AS uuid)",
            v=version,
        )
        control = session.scalar(
            "SELECT count(*) FROM external_chunks"
            " WHERE pg_column_toast_chunk_id(embedding) IS NOT NULL"
        )
        session.run("DROP TABLE external_chunks")
    assert control == rows, f"rows of {smallest} bytes stay inline under EXTERNAL too"
