"""Logs for operators: a client's mistake is one INFO line (with BentoML's trace and span ids,
which name the request), a server error keeps its traceback.

BentoML logs every exception raised while handling a request as an ERROR with a traceback; a
filter on its log handlers rewrites the ones that are the client's doing (pydantic validation of
the input, an HTTP error below 500) before they are written.
"""

from __future__ import annotations

import logging

from bentoml.exceptions import BentoMLException
from pydantic import ValidationError


def client_error_status(error: BaseException | None) -> int | None:
    """The 4xx an exception answers with, or None for a server error."""
    if isinstance(error, ValidationError):
        return 400
    if isinstance(error, BentoMLException) and error.error_code.value < 500:
        return int(error.error_code.value)
    return None


class ClientErrorsAsInfo(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        status = client_error_status(error)
        if status is not None:
            reason = str(error).splitlines()[0] if isinstance(error, BentoMLException) else _validation(error)
            record.msg = f"{record.getMessage().replace('Exception on', 'Refused')} ({status}): %s"
            record.args = (reason,)
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text = None, None
        return True


def _validation(error: BaseException | None) -> str:
    if not isinstance(error, ValidationError) or not error.errors():
        return str(error)
    first = error.errors()[0]
    return f"{'.'.join(str(p) for p in first.get('loc', ()))}: {first.get('msg', '')}"


def install() -> None:
    """On the handlers of BentoML's logger, which every ``bentoml.*`` logger's records reach
    (request errors come from several modules' loggers)."""
    for handler in logging.getLogger("bentoml").handlers:
        if not any(isinstance(f, ClientErrorsAsInfo) for f in handler.filters):
            handler.filters.insert(0, ClientErrorsAsInfo())  # before BentoML's, which formats the level
