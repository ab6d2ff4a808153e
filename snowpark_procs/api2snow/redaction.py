"""Redaction by value: every secret a procedure call holds is masked in whatever the call writes or raises.

Pattern-based masking (http/errors.py) catches token-looking text; this module masks the actual values,
wherever they turn up: a log line, a ledger ERROR_MESSAGE, a task return value, an exception (and its
__cause__/__context__ chain), or an upstream error body that echoes a password back.

How values get here: the platform seam's secret readers register what they return, in one place, the
wrapper that `platform.get_platform()` puts around every platform (`platform.SecretRegisteringPlatform`).
No other code has to remember to register anything, and a new secret reader is covered by adding it there.

Scope: `procedures._run` opens a fresh `Registry` per procedure call (`call_scope`). The registry is a
mutable object held by a ContextVar, so threads started in a copy of the caller's context (page prefetch)
share it by reference: a token fetched in the worker is masked in the caller's error message too.
Outside a call nothing is registered and `redact` masks nothing by value.

Short values: values shorter than MIN_SECRET_LENGTH (4) characters are not registered, because masking
every "a" or "42" would wreck the messages and protect nothing a guess would not find. Empty values are
ignored. Derived forms are registered with each value: URL-encoded (quote, quote_plus), JSON-escaped,
"Bearer <token>" for tokens, and base64 "user:password" for HTTP Basic logins (raw and form-encoded, as
RFC 6749 client_secret_basic sends them).
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import json
import logging
import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus

MIN_SECRET_LENGTH = 4
MASK = "***"
LOGGER_TREE = "api2snow"


class Registry:
    """The secret values of one procedure call; thread-safe, shared by the call's worker threads."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, values: Iterable[str]) -> None:
        fresh = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH} - self._values
        if fresh:
            with self._lock:
                self._values |= fresh
                self._pattern = None

    def __len__(self) -> int:
        return len(self._values)

    def redact(self, text: str) -> str:
        pattern = self._compiled()
        return pattern.sub(MASK, text) if pattern is not None else text

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._values:
                # Longest first, so a value that contains another is masked whole.
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
            return self._pattern


_current: contextvars.ContextVar[Registry | None] = contextvars.ContextVar("api2snow_secrets", default=None)


@contextlib.contextmanager
def call_scope() -> Iterator[Registry]:
    """A fresh registry for one procedure call (values of an earlier call in this process do not linger)."""
    registry = Registry()
    token = _current.set(registry)
    try:
        yield registry
    finally:
        _current.reset(token)


def current() -> Registry | None:
    return _current.get()


def derived_forms(value: str) -> list[str]:
    """A value and the encodings under which it may be sent or echoed."""
    return [value, quote(value, safe=""), quote_plus(value, safe=""), json.dumps(value)[1:-1]]


def register(*values: str | None) -> None:
    """Mask these values (and their encodings) in everything this call writes or raises."""
    registry = _current.get()
    if registry is None:
        return
    registry.add(form for value in values if value for form in derived_forms(value))


def register_token(token: str | None) -> None:
    """A bearer token, also in its header form."""
    if token:
        register(token, f"Bearer {token}")


def register_login(user: str, password: str | None) -> None:
    """A user/password pair: the password, and the HTTP Basic credentials built from the pair."""
    if not password:
        return
    register(password)
    for name, secret in ((user, password), (quote_plus(user, safe=""), quote_plus(password, safe=""))):
        encoded = base64.b64encode(f"{name}:{secret}".encode()).decode("ascii")
        register(encoded, f"Basic {encoded}")


def redact(text: str) -> str:
    """`text` with every registered value of the current call masked."""
    registry = _current.get()
    return registry.redact(text) if registry is not None and text else text


def redact_value(value: Any) -> Any:
    """A copy of a JSON-like value (dicts, lists, strings) with registered values masked in every string."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_value(k): redact_value(v) for k, v in value.items()}
    if type(value) in (list, tuple):  # exact types: a namedtuple cannot be rebuilt from one iterable
        return type(value)(redact_value(v) for v in value)
    return value


def redact_exception(exc: BaseException) -> None:
    """Mask registered values in the string args and attributes of `exc` and its whole chain, in place."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current_exc = pending.pop()
        if current_exc is None or id(current_exc) in seen:
            continue
        seen.add(id(current_exc))
        _redact_one(current_exc)
        pending += [current_exc.__cause__, current_exc.__context__]


def scrubbed(exc: BaseException) -> BaseException:
    """`exc` redacted in place; or, if its `str` still shows a secret (a custom __str__ that its args do
    not feed), a RuntimeError carrying its redacted message instead."""
    redact_exception(exc)
    text = str(exc)
    masked = redact(text)
    return exc if masked == text else RuntimeError(f"{type(exc).__name__}: {masked}")


def _redact_one(exc: BaseException) -> None:
    exc.args = tuple(redact_value(arg) for arg in exc.args)
    for name, value in list(vars(exc).items()):
        if isinstance(value, str | list | tuple | dict):
            with contextlib.suppress(AttributeError, TypeError):  # read-only attributes stay as they are
                setattr(exc, name, redact_value(value))


class RedactingFilter(logging.Filter):
    """Masks registered values in a log record's message and exception text, before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _current.get() is None:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a broken format string: the handler reports it as usual
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactingFilter()


def install_log_filter() -> None:
    """Attach the filter to every logger of the `api2snow` tree that exists now (idempotent).

    Logger filters see only records logged on that very logger, not those propagated from children, so
    each logger gets it; the package's modules (and their loggers) are all imported before a call runs.
    """
    manager = logging.Logger.manager
    names = [LOGGER_TREE] + [n for n in list(manager.loggerDict) if n.startswith(LOGGER_TREE + ".")]
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
