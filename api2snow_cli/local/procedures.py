"""CALL statements, dispatched to the handlers that snowflake.yml names (fakesnow has no procedures).

The handler is imported and called with the Snowpark Session and the CALL's literal arguments, with
the declared defaults filled in, exactly as Snowflake binds them; the declared SECRETS of the procedure
are the only secrets the handler may read during the call.
"""

from __future__ import annotations

import contextvars
import importlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import sqlglot
from sqlglot import exp

from ..project import Procedure

_CALL = re.compile(r"^\s*CALL\s+(?P<name>[\w.$\"]+)\s*\((?P<args>.*)\)\s*;?\s*$", re.IGNORECASE | re.DOTALL)


class ProcedureCallError(RuntimeError):
    """A CALL names an undeclared procedure or passes arguments it does not take."""


@dataclass
class CallContext:
    """State of one procedure call (shared with threads started in its context): the procedure, whose
    declared secrets it may read, the return value it set, its OAuth2 token sources, where it may
    connect (an egress.Allowance; None: unchecked), and the thread that started it: the handler's main
    thread, the only one Snowflake lets read secrets."""

    procedure: Procedure
    return_value: str | None = None
    token_sources: dict[str, Any] = field(default_factory=dict)  # OAUTH2 secret -> its token source, per call
    egress: Any = None
    # The dispatcher creates the context on the thread that runs the CALL, so that thread is recorded.
    main_thread: threading.Thread = field(default_factory=threading.current_thread)
    dispatcher: Any = None  # the ProcedureDispatcher running the call: a CALL from inside it goes there too


# A context variable, not a thread-local: threads a handler starts in a copy of its context (page prefetch)
# belong to the same call.
_current: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar("api2snow_call", default=None)


def current_call() -> CallContext | None:
    return _current.get()


def is_call_statement(statement: str) -> bool:
    return bool(_CALL.match(statement))


def _literal(node: exp.Expression) -> Any:
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Boolean):
        return node.this
    if isinstance(node, exp.Neg):
        return -_literal(node.this)
    if isinstance(node, exp.RawString):  # $$...$$
        return node.this
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        number = float(node.this)
        return int(number) if number.is_integer() and "." not in node.this else number
    raise ProcedureCallError(f"only literal arguments can be passed locally, got {node.sql('snowflake')!r}")


def _coerce(value: Any, sql_type: str) -> Any:
    """`value` cast to the declared type as Snowflake casts it; NULL stays None (the handler checks it)."""
    kind = sql_type.lower()
    if value is None:
        return None
    if kind.startswith(("int", "number", "bigint")):  # NUMBER(38, 0) rounds half away from zero: 1.5 -> 2
        return int(Decimal(str(value)).to_integral_value(rounding=ROUND_HALF_UP))
    if kind.startswith(("float", "double", "real")):
        return float(value)
    if kind.startswith(("string", "varchar", "text")):
        return str(value)
    return value


def _bound(proc: Procedure, name: str, value: Any, sql_type: str) -> Any:
    """One CALL argument cast to its declared type; a value that does not cast fails like in Snowflake."""
    try:
        return _coerce(value, sql_type)
    except (ValueError, TypeError, InvalidOperation):
        raise ProcedureCallError(
            f"{proc.name}: argument {name} is {sql_type.upper()}, and {value!r} is not recognized as one"
        ) from None


def sql_literal(value: Any) -> str:
    """A Python argument as a SQL literal of a CALL (strings quoted, NULL for None)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def call_statement(procedure: str, args: list[Any]) -> str:
    return f"CALL {procedure}({', '.join(sql_literal(a) for a in args)})"


@dataclass(frozen=True)
class CallResult:
    """What a CALL returns: a table procedure's columns and rows, or a scalar procedure's value (text, as
    Snowflake shows a VARIANT) in one column named after the procedure, as `snow sql` shows a CALL."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    value: str | None = None


def parse_call(statement: str) -> tuple[str, list[Any]]:
    match = _CALL.match(statement)
    if not match:
        raise ProcedureCallError(f"not a CALL statement: {statement[:80]!r}")
    args_sql = match.group("args").strip()
    args = (
        []
        if not args_sql
        else [_literal(e) for e in sqlglot.parse_one(f"SELECT {args_sql}", read="snowflake").expressions]
    )
    return match.group("name").replace('"', "").upper(), args


class ProcedureDispatcher:
    """Resolves CALL <db>.<schema>.<name>(...) against snowflake.yml and runs the handler."""

    def __init__(
        self, procedures: dict[str, Procedure], session: Any, egress: dict[str, Any] | None = None
    ) -> None:
        self.procedures = procedures
        self.session = session
        self.egress = egress  # procedure name -> egress.Allowance; None: connections are not checked

    def resolve(self, name: str) -> Procedure:
        proc = self.procedures.get(name.rsplit(".", 1)[-1])
        if proc is None or (name.count(".") == 2 and name != proc.fqn):
            raise ProcedureCallError(f"procedure {name} is not declared in snowflake.yml")
        return proc

    def handler(self, proc: Procedure) -> Callable[..., Any]:
        module_name, _, function = proc.handler.rpartition(".")
        module = importlib.import_module(module_name)
        return getattr(module, function)

    def bind(self, proc: Procedure, args: list[Any]) -> list[Any]:
        if len(args) > len(proc.arguments):
            raise ProcedureCallError(f"{proc.name} takes {len(proc.arguments)} argument(s), got {len(args)}")
        bound = []
        for index, argument in enumerate(proc.arguments):
            if index < len(args):
                bound.append(_bound(proc, argument.name, args[index], argument.type))
            elif argument.default is not None:
                bound.append(
                    _coerce(_literal(sqlglot.parse_one(argument.default, read="snowflake")), argument.type)
                )
            else:
                raise ProcedureCallError(f"{proc.name}: missing argument {argument.name}")
        return bound

    def call(self, statement: str) -> str:
        """Run a CALL; returns what Snowflake would show as the task's return value (a table procedure's
        rows as a JSON list of objects)."""
        result = self.execute(statement)
        if result.value is not None:
            return result.value
        return json.dumps([dict(zip(result.columns, row, strict=True)) for row in result.rows], default=str)

    def execute(self, statement: str) -> CallResult:
        """Run a CALL as a client sees it: a table procedure's rows (its handler returns a Snowpark DataFrame,
        collected here with the columns snowflake.yml declares), or the procedure's value."""
        name, args = parse_call(statement)
        proc = self.resolve(name)
        context = CallContext(proc, egress=(self.egress or {}).get(proc.name), dispatcher=self)
        token = _current.set(context)
        try:
            result = self.handler(proc)(self.session, *self.bind(proc, args))
            if proc.table_columns:
                return CallResult(list(proc.table_columns), _table_rows(proc, result))
        finally:
            _current.reset(token)
        value = context.return_value or json.dumps(result, default=str, separators=(",", ":"))
        return CallResult([proc.name], [(value,)], value)


def _table_rows(proc: Procedure, result: Any) -> list[tuple[Any, ...]]:
    """A table procedure's DataFrame collected; like Snowflake, a handler that returns anything else, or
    other columns than the declared ones, fails the call."""
    if not hasattr(result, "collect") or not hasattr(result, "columns"):
        raise ProcedureCallError(
            f"{proc.name} returns a table, and its handler returned {type(result).__name__}, not a DataFrame"
        )
    columns = [c.strip('"').upper() for c in result.columns]
    if columns != list(proc.table_columns):
        raise ProcedureCallError(
            f"{proc.name}: its handler returned columns {columns}, "
            f"snowflake.yml declares {list(proc.table_columns)}"
        )
    return [tuple(row) for row in result.collect()]
