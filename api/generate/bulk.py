"""Writing rows in bulk: COPY on PostgreSQL (psycopg's `cursor.copy`), `executemany` on SQLite, never one ORM
object at a time.

A `BulkWriter` either commits each `write` on its own, or (`one_transaction=True`) holds everything it writes
in one transaction until `finish`. In that mode `relax` first drops the indexes and the primary-key, unique and
foreign-key constraints of the tables named (on SQLite: turns foreign-key checks off and drops the indexes),
and `finish` puts every one back, which checks every row at once, before committing: building an index from
sorted data and checking a constraint with one join is far cheaper than maintaining them row by row. DDL is
transactional on both backends, so a failure at any point leaves the database as it was.

COPY data (binary) can be formatted apart from the connection that sends it (`copy_data`), in another process."""

from __future__ import annotations

import io
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg.copy import Copy, FileWriter
from sqlalchemy import JSON
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url

from api.db import ensure_sqlite_directory
from api.generate.rows import COLUMNS, TABLE_ORDER, RowSet
from api.models import Base

__all__ = [
    "BackgroundWriter",
    "BulkWriter",
    "CopyData",
    "Prepared",
    "column_types",
    "connect_postgresql",
    "copy_data",
    "prepare",
    "sqlite_rows",
]

Processor = Callable[[Any], Any]
CopyData = dict[str, bytes]  # binary COPY data by table
Prepared = dict[str, Any]  # by table: COPY data (PostgreSQL) or converted rows (SQLite)


def _json_columns(table: str) -> list[int]:
    columns = Base.metadata.tables[table].c
    return [i for i, name in enumerate(COLUMNS[table]) if isinstance(columns[name].type, JSON)]


_JSON = {table: _json_columns(table) for table in TABLE_ORDER}


def _sqlite_processors(table: str) -> list[tuple[int, Processor]]:
    """SQLAlchemy's own conversions (UUIDs as hex, UTC instants as naive text, JSON as text), column by column."""
    dialect = sqlite_dialect.dialect()
    columns = Base.metadata.tables[table].c
    found = []
    for i, name in enumerate(COLUMNS[table]):
        processor = columns[name].type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            found.append((i, processor))
    return found


def connect_postgresql(url: str) -> psycopg.Connection:
    parsed = make_url(url)
    return psycopg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, password=parsed.password, dbname=parsed.database,
        **{k: str(v) for k, v in parsed.query.items()},
    )


_TEXT_OID = 25
# Types whose binary form is their text: sent as text, which their receive functions read.
_AS_TEXT = ("json", "jsonb", "varchar", "bpchar", "text")


def column_types(connection: psycopg.Connection) -> dict[str, list[int]]:
    """The type of every column `COLUMNS` names, as the database has it, for binary COPY."""
    found = {}
    for table in TABLE_ORDER:
        types = dict(connection.execute(
            "SELECT a.attname, CASE WHEN t.typname = ANY(%s) THEN %s ELSE a.atttypid::int END"
            " FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
            " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
            (list(_AS_TEXT), _TEXT_OID, table),
        ).fetchall())
        found[table] = [types[name] for name in COLUMNS[table]]
    return found


def copy_data(cursor: psycopg.Cursor, rows: RowSet, types: dict[str, list[int]]) -> CopyData:
    """The rows as binary COPY data, by table; `cursor` lends its adapters only (nothing is sent). JSON values
    are written as JSON text, None included (JSON null), as SQLAlchemy writes them."""
    found: CopyData = {}
    dumps = json.dumps
    for table in TABLE_ORDER:
        table_rows = rows.tables[table]
        if not table_rows:
            continue
        json_columns = _JSON[table]
        buffer = io.BytesIO()
        with Copy(cursor, binary=True, writer=FileWriter(buffer)) as copy:
            copy.set_types(types[table])
            write = copy.write_row
            if not json_columns:
                for row in table_rows:
                    write(row)
            else:
                for row in table_rows:
                    values = list(row)
                    for i in json_columns:
                        values[i] = dumps(values[i])
                    write(values)
        found[table] = buffer.getvalue()
    return found


_SQLITE_PROCESSORS: dict[str, list[tuple[int, Processor]]] = {}


def sqlite_rows(rows: RowSet) -> dict[str, list[list[Any]]]:
    """The rows as SQLite takes them, by table: each value converted as SQLAlchemy converts it (UUIDs as hex,
    UTC instants as naive text, JSON as text, None in a JSON column as JSON null)."""
    if not _SQLITE_PROCESSORS:
        _SQLITE_PROCESSORS.update({table: _sqlite_processors(table) for table in TABLE_ORDER})
    found = {}
    for table in TABLE_ORDER:
        table_rows = rows.tables[table]
        if not table_rows:
            continue
        processors = _SQLITE_PROCESSORS[table]
        json_columns = set(_JSON[table])
        converted = []
        for row in table_rows:
            values = list(row)
            for i, process in processors:
                value = values[i]
                if value is not None or i in json_columns:
                    values[i] = process(value)
            converted.append(values)
        found[table] = converted
    return found


def prepare(rows: RowSet, *, dialect: str, cursor: psycopg.Cursor | None = None,
            types: dict[str, list[int]] | None = None) -> Prepared:
    """The rows ready for `BulkWriter.write_prepared`: binary COPY data on PostgreSQL (`cursor` and `types`
    needed), converted values on SQLite. Made wherever is convenient, in another process included."""
    if dialect == "postgresql":
        assert cursor is not None and types is not None
        return copy_data(cursor, rows, types)
    return sqlite_rows(rows)


class BulkWriter:
    """A connection of its own to the database at `url`, writing RowSets (and, on PostgreSQL, COPY data)."""

    def __init__(self, url: str, *, one_transaction: bool = False):
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        self.one_transaction = one_transaction
        self.written: dict[str, int] = dict.fromkeys(TABLE_ORDER, 0)
        self.seconds: dict[str, float] = dict.fromkeys(TABLE_ORDER, 0.0)  # time spent writing each table
        self.finish_seconds = 0.0  # putting indexes and constraints back, checking, committing
        self._restore: list[str] = []  # statements that undo `relax`, in order
        self._check_foreign_keys = False
        self._types: dict[str, list[int]] | None = None
        if self.dialect == "postgresql":
            self._pg = connect_postgresql(url)
            if one_transaction:
                self._pg.execute("SET synchronous_commit = off")  # opens the one transaction
            else:
                self._pg.autocommit = True  # each write is a `transaction()` block of its own
        elif self.dialect == "sqlite":
            ensure_sqlite_directory(parsed)
            self._lite = sqlite3.connect(parsed.database, isolation_level=None, timeout=30, check_same_thread=False)
            for pragma in ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=30000", "synchronous=NORMAL"):
                self._lite.execute(f"PRAGMA {pragma}")
            if one_transaction:
                # This connection's own page cache (256 MiB, not 2): random keys make every insert touch a
                # random page of each index.
                self._lite.execute("PRAGMA cache_size=-262144")
                self._lite.execute("PRAGMA temp_store=MEMORY")
            if one_transaction:
                self._lite.execute("BEGIN IMMEDIATE")
        else:  # pragma: no cover - Database refuses other backends first
            raise ValueError(f"unsupported database {self.dialect!r}")

    @property
    def connection(self) -> psycopg.Connection:
        """The PostgreSQL connection (its transaction is the writer's)."""
        return self._pg

    # ---- relaxing and restoring constraints -----------------------------------------------------------------

    def relax(self, tables: Sequence[str]) -> None:
        """Drop the indexes and the key and foreign-key constraints of `tables` until `finish`."""
        if not self.one_transaction:
            raise RuntimeError("constraints are relaxed only inside one transaction")
        if self.dialect == "postgresql":
            self._relax_postgresql(list(tables))
        else:
            self._relax_sqlite(list(tables))

    def _relax_postgresql(self, tables: list[str]) -> None:
        """Drop every foreign key from or to `tables`, then their primary-key and unique constraints and their
        other indexes. Random UUID keys make a B-tree insert touch a random page: once the indexes outgrow
        the buffer cache, maintaining them row by row costs more than everything else together."""
        execute = self._pg.execute
        foreign = execute(
            """
            SELECT conname, conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint
            WHERE contype = 'f' AND (conrelid = ANY(%(t)s::regclass[]) OR confrelid = ANY(%(t)s::regclass[]))
            ORDER BY 2, 1
            """,
            {"t": tables},
        ).fetchall()
        keys = execute(
            """
            SELECT conname, conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint
            WHERE contype IN ('p', 'u') AND conrelid = ANY(%s::regclass[])
            ORDER BY contype, 2, 1
            """,
            (tables,),
        ).fetchall()
        indexes = execute(
            """
            SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i
            WHERE i.indrelid = ANY(%s::regclass[])
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)
            ORDER BY 1
            """,
            (tables,),
        ).fetchall()
        for name, table, _ in foreign + keys:
            execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            execute(f"DROP INDEX {name}")
        self._restore = [f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}' for n, t, d in keys]
        self._restore += [definition for _, definition in indexes]
        self._restore += [f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}' for n, t, d in foreign]

    def _relax_sqlite(self, tables: list[str]) -> None:
        # Foreign-key enforcement cannot change inside a transaction: commit the empty one, switch, begin again.
        self._lite.execute("COMMIT")
        self._lite.execute("PRAGMA foreign_keys=OFF")
        self._lite.execute("BEGIN IMMEDIATE")
        self._check_foreign_keys = True
        marks = ", ".join("?" * len(tables))
        indexes = self._lite.execute(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ({marks})"
            " ORDER BY name",
            tables,
        ).fetchall()
        for name, _ in indexes:
            self._lite.execute(f'DROP INDEX "{name}"')
        self._restore = [sql for _, sql in indexes]

    # ---- writing ----------------------------------------------------------------------------------------------

    def write(self, rows: RowSet) -> None:
        """Insert every row of the set, tables in foreign-key order (in one transaction of its own unless the
        writer holds one)."""
        if self.dialect == "postgresql" and self._types is None:
            self._types = column_types(self._pg)
        cursor = self._pg.cursor() if self.dialect == "postgresql" else None
        self.write_prepared(prepare(rows, dialect=self.dialect, cursor=cursor, types=self._types), rows.counts())

    def write_prepared(self, data: Prepared, counts: dict[str, int]) -> None:
        """Rows made ready by `prepare`, with the row counts they hold."""
        if self.dialect == "postgresql":
            cursor = self._pg.cursor()
            if self.one_transaction:
                self._copy_all(cursor, data)
            else:
                with self._pg.transaction():
                    self._copy_all(cursor, data)
        else:
            self._insert_all(data)
        for table, count in counts.items():
            self.written[table] += count

    def _copy_all(self, cursor: psycopg.Cursor, data: CopyData) -> None:
        for table in TABLE_ORDER:
            chunk = data.get(table)
            if not chunk:
                continue
            started = time.perf_counter()
            with cursor.copy(f"COPY {table} ({', '.join(COLUMNS[table])}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(chunk)
            self.seconds[table] += time.perf_counter() - started

    def _insert_all(self, data: dict[str, list[list[Any]]]) -> None:
        cursor = self._lite.cursor()
        if not self.one_transaction:
            cursor.execute("BEGIN IMMEDIATE")
        try:
            for table in TABLE_ORDER:
                found = data.get(table)
                if not found:
                    continue
                columns = COLUMNS[table]
                started = time.perf_counter()
                cursor.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", found
                )
                self.seconds[table] += time.perf_counter() - started
            if not self.one_transaction:
                cursor.execute("COMMIT")
        except BaseException:
            if not self.one_transaction:
                cursor.execute("ROLLBACK")
            raise
        finally:
            cursor.close()

    # ---- the end ----------------------------------------------------------------------------------------------

    def finish(self, analyze: Sequence[str] = ()) -> None:
        """Put back what `relax` dropped (checking every row against it), commit, and refresh the planner's
        statistics of the tables in `analyze`."""
        if not self.one_transaction:
            return
        started = time.perf_counter()
        if self.dialect == "postgresql":
            self._pg.execute("SET maintenance_work_mem = '512MB'")
            for statement in self._restore:
                self._pg.execute(statement)
            self._pg.commit()
            for table in analyze:
                self._pg.execute(f"ANALYZE {table}")
            self._pg.commit()
        else:
            for statement in self._restore:
                self._lite.execute(statement)
            if self._check_foreign_keys:
                broken = self._lite.execute("PRAGMA foreign_key_check").fetchmany(5)
                if broken:
                    raise sqlite3.IntegrityError(f"foreign keys broken by the load: {broken}")
            self._lite.execute("COMMIT")
            self._lite.execute("PRAGMA foreign_keys=ON")
            for table in analyze:
                self._lite.execute(f"ANALYZE {table}")
        self._restore = []
        self.one_transaction = False
        self.finish_seconds = time.perf_counter() - started

    def close(self) -> None:
        """Close the connection; whatever an unfinished transaction held is rolled back."""
        if self.dialect == "postgresql":
            self._pg.close()
        else:
            if self._lite.in_transaction:
                self._lite.execute("ROLLBACK")
            self._lite.close()


class BackgroundWriter:
    """Calls `write` on a thread of its own: `put` hands it a batch and returns while it is written (waiting only
    when `depth` batches are already queued); the first failure is raised by the next `put` or by `close`."""

    def __init__(self, write: Callable[[Any], None], depth: int = 2):
        self._write = write
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="entitle-bulk-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            if self._error is not None:
                continue  # drain: the caller hears of the failure at its next put or close
            try:
                self._write(batch)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, batch: Any) -> None:
        self._raise()
        self._queue.put(batch)

    def close(self) -> None:
        """Wait until everything put is written; raise the first failure."""
        self._queue.put(None)
        self._thread.join()
        self._raise()
