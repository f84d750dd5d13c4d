"""Hand-written SQL for the few hot operations: named statements, one runner, one row loader.

Every transcription is submitted, claimed, completed and paid for; the ORM's query building
costs about ten times those queries, so these few operations are SQL. Each is written once
with named parameters (`%(worker_id)s`). PostgreSQL does an operation in one statement (a
data-modifying WITH: one round trip, no transaction needed); SQLite has no such WITH, so a
statement may carry SQLite's steps beside it, which `run` executes in order inside one
transaction. The apps keep their statements in a `statements` module each.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import OperationalError, connection, models, transaction

if TYPE_CHECKING:
    from django.db.backends.utils import CursorWrapper
    from django.db.models.expressions import Col

T = TypeVar("T")
M = TypeVar("M", bound=models.Model)
Row = tuple[Any, ...]
# Where each loaded field's value is in the row, its converters, and the expression they take.
_Layout = list[tuple[int, list[Callable[..., Any]], "Col"]]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Statement:
    """One operation in SQL.

    `sql` is what PostgreSQL runs (and SQLite too, when `sqlite_steps` is empty). SQLite's
    steps stand for the same operation: the first step is its guard (when it matches no row,
    nothing else runs and the operation matched nothing); the columns a step returns are
    parameters of the steps after it (a parameter given by the caller keeps its value); and
    the answer is one row of the columns the steps returned, in order, as PostgreSQL's final
    SELECT returns them.
    """

    name: str
    sql: str
    sqlite_steps: tuple[str, ...] = ()

    def steps(self) -> tuple[str, ...]:
        if self.sqlite_steps and connection.vendor != "postgresql":
            return self.sqlite_steps
        return (self.sql,)


@dataclass(frozen=True)
class Answer:
    """What a statement matched: its row (or None) with the names of its columns, and the rows it changed."""

    columns: tuple[str, ...]
    row: Row | None
    rowcount: int

    def value(self, column: str) -> Any:
        return None if self.row is None else self.row[self.columns.index(column)]


def run(statement: Statement, params: Mapping[str, Any]) -> Answer:
    steps = statement.steps()
    if len(steps) == 1:
        with connection.cursor() as cursor:
            return _step(cursor, steps[0], params)
    # Inside a caller's transaction the steps join it (no savepoint: a failure fails it anyway).
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        guard = _step(cursor, steps[0], params)
        if guard.row is None and guard.rowcount <= 0:
            return guard
        columns, row = guard.columns, guard.row or ()
        for sql in steps[1:]:
            answer = _step(cursor, sql, {**dict(zip(columns, row, strict=True)), **params})
            if answer.columns:
                columns, row = columns + answer.columns, row + (answer.row or (None,) * len(answer.columns))
        return Answer(columns, row if columns else None, guard.rowcount)


# The column names each statement's SQL answers with. They never change for one text (columns
# are named, never `*`), while psycopg builds its `description` afresh on every read, an object
# per column (29 for a job): so it is read once per statement and process.
_answer_columns: dict[str, tuple[str, ...] | None] = {}


def _step(cursor: CursorWrapper, sql: str, params: Mapping[str, Any]) -> Answer:
    cursor.execute(sql, params)
    try:
        columns = _answer_columns[sql]
    except KeyError:
        description = cursor.description
        columns = _answer_columns[sql] = None if description is None else tuple(col[0] for col in description)
    if columns is None:
        return Answer((), None, cursor.rowcount)
    row = cursor.fetchone()
    return Answer(columns, row, 1 if row is not None else 0)


def load(model: type[M], statement: Statement, params: Mapping[str, Any]) -> M | None:
    """The statement's row as a `model` instance, or None. Columns it leaves out are deferred."""
    answer = run(statement, params)
    return instance(model, answer.columns, answer.row) if answer.row is not None else None


def instance(model: type[M], columns: Sequence[str], row: Row) -> M:
    """The row's columns that are `model`'s fields, converted as the ORM would, as an instance.

    What `Model.objects.raw()` does, minus the per-call set-up that cost more than the query;
    other columns of the row are ignored."""
    attnames, layout = _row_layout(model, tuple(columns), connection.vendor)
    values = []
    for position, converters, expression in layout:
        value = row[position]
        for convert in converters:
            value = convert(value, expression, connection)
        values.append(value)
    return model.from_db(connection.alias, attnames, values)


@functools.cache
def _row_layout(model: type[models.Model], columns: tuple[str, ...], vendor: str) -> tuple[list[str], _Layout]:
    """For one row shape: the fields in the model's order (what `from_db` takes), each with its
    column's position and the database-to-Python converters the ORM's compiler would apply."""
    attnames: list[str] = []
    layout: _Layout = []
    for field in model._meta.concrete_fields:
        if field.column in columns:
            expression = field.get_col(model._meta.db_table)
            converters: list[Callable[..., Any]] = connection.ops.get_db_converters(expression)
            attnames.append(field.attname)
            layout.append(
                (columns.index(field.column), converters + expression.get_db_converters(connection), expression)
            )
    return attnames, layout


# --- Writing the SQL -------------------------------------------------------------------------


def table(model: type[models.Model]) -> str:
    return model._meta.db_table


def column_list(model: type[models.Model], prefix: str = "") -> str:
    """Every column, named: never `*`, since PostgreSQL refuses a prepared `SELECT *` once a
    migration has added a column ("cached plan must not change result type"), which would break
    the app servers still on the old release during a rolling deploy."""
    return ", ".join(prefix + connection.ops.quote_name(column) for column in _columns(model))


def insert_values(model: type[models.Model]) -> str:
    """`(columns) VALUES (%(column)s, …)` for every column the row sets (an auto-numbered id is
    the database's): a new row from `row_params`."""
    columns = [column for column, _ in _inserted_fields(model)]
    names = ", ".join(connection.ops.quote_name(column) for column in columns)
    return f"({names}) VALUES ({', '.join(f'%({column})s' for column in columns)})"


def row_params(obj: models.Model) -> dict[str, Any]:
    """A new instance's values, as the database takes them, named by column (for `insert_values`)."""
    return {column: f.get_db_prep_save(f.pre_save(obj, True), connection) for column, f in _inserted_fields(type(obj))}


def _inserted_fields(model: type[models.Model]) -> list[tuple[str, models.Field]]:
    return [
        (f.column, f) for f in model._meta.concrete_fields if f.column is not None and f is not model._meta.auto_field
    ]


def _columns(model: type[models.Model]) -> list[str]:
    """The model's columns in field order (Django calls a field concrete when it has a column)."""
    return [f.column for f in model._meta.concrete_fields if f.column is not None]


def literal(value: str) -> str:
    """A choice's value as an SQL literal, so the statement says `status = 'queued'` from `Job.Status`
    and the planner can use partial indexes on it. Choice values are identifiers, never input."""
    if not value.isidentifier():
        raise ValueError(f"not a choice value: {value!r}")
    return f"'{value}'"


def db_datetime(value: datetime | None) -> datetime | str | None:
    """A datetime as the column takes it (PostgreSQL the datetime; SQLite stores naive UTC text)."""
    return connection.ops.adapt_datetimefield_value(value)


def db_value(model: type[models.Model], field_name: str, value: Any) -> Any:
    """A value as `model.field_name`'s column takes it (JSON, decimals, …)."""
    field = model._meta.get_field(field_name)
    if not isinstance(field, models.Field):
        raise TypeError(f"{model.__name__}.{field_name} is a relation's other side, not a column")
    return field.get_db_prep_save(value, connection)


def for_update() -> str:
    return " FOR UPDATE" if connection.features.has_select_for_update else ""


def per_row() -> str:
    """Ends a correlated EXISTS that must be checked row by row through its indexes. Left to
    itself, PostgreSQL may instead hash every row the subquery could match for any outer row (when
    its statistics are stale, e.g. a table that grew since it was last analysed): for a claim, all
    of a volunteer's attempts ever, so each claim got slower as its history grew (1.8 ms after
    1,000 jobs). An OFFSET keeps it from rewriting the EXISTS that way; SQLite runs it per row anyway."""
    return " OFFSET 0" if connection.vendor == "postgresql" else ""


def skip_locked() -> str:
    return " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""


# PostgreSQL's deadlock and serialization failures: the transaction was rolled back whole, and
# running it again is the documented remedy.
_RETRYABLE_SQLSTATES = ("40P01", "40001")


def retried_on_conflict(operation: Callable[[], T], *, tries: int = 3) -> T:
    """Run `operation` (one transaction of its own) again when PostgreSQL rolled it back as a
    deadlock's victim, up to `tries` times. Inside a caller's transaction it runs once: that
    transaction is aborted, and only its owner can start again."""
    for attempt in range(1, tries + 1):
        try:
            return operation()
        except OperationalError as exc:
            sqlstate = getattr(exc.__cause__, "sqlstate", None)
            if sqlstate not in _RETRYABLE_SQLSTATES or attempt == tries or connection.in_atomic_block:
                raise
            log.warning("%s (SQLSTATE %s): running the transaction again", str(exc).splitlines()[0], sqlstate)
    raise AssertionError("unreachable")
