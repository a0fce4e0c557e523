"""Optional bearer-token auth, the same for HTTP and gRPC.

The token comes from ``CNNPIPE_API_TOKEN`` or the file named by ``CNNPIPE_API_TOKEN_FILE`` (a
secret mounted as a file; surrounding whitespace is stripped). Without either, auth is off.
Requests carry ``Authorization: Bearer <token>``; the comparison takes constant time, and a
refusal says no more than "missing or invalid token".
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from cnnpipe.errors import CnnpipeError

REFUSAL = "missing or invalid bearer token"


def load_token(environ: dict[str, str] | None = None) -> str | None:
    """The configured token, or None when auth is off. An empty token or file is an error."""
    env = os.environ if environ is None else environ
    token = env.get("CNNPIPE_API_TOKEN")
    source = "CNNPIPE_API_TOKEN"
    if token is None and env.get("CNNPIPE_API_TOKEN_FILE"):
        path = Path(env["CNNPIPE_API_TOKEN_FILE"])
        source = f"CNNPIPE_API_TOKEN_FILE ({path})"
        try:
            token = path.read_text()
        except OSError as exc:
            raise CnnpipeError(f"cannot read the API token: {source}: {exc.strerror}") from None
    if token is None:
        return None
    token = token.strip()
    if not token:
        raise CnnpipeError(f"the API token in {source} is empty")
    return token


def authorized(header: str | bytes | None, token: str) -> bool:
    """Whether an ``Authorization`` header value carries ``token`` (constant-time compare)."""
    if isinstance(header, bytes):
        header = header.decode("latin-1")
    scheme, _, value = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())
