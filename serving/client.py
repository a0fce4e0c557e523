"""Calling the service with BentoML's own client: the one fix its task API needs (BentoML 1.4.39, 1.4.40).

``bentoml.SyncHTTPClient`` keeps the files it opens for an upload in ``client._file_manager``,
and every call closes them there, except ``submit`` on a task endpoint: its ``finally`` still
closes ``client._opened_files``, which nothing sets. So every ``submit`` ends in
``AttributeError: ... no attribute '_opened_files'``, whatever happened before: the task it queued
(its id lost) or the server's 4xx (left as the ``AttributeError``'s context). The async client
is not affected. :func:`fix_task_submit` makes that name the file manager's list, so ``submit``'s
``finally`` closes the uploaded files as ``_call`` does (``client._opened_files = []`` would stop
the crash but leave each upload's file open). ``tests/test_client.py`` fails when BentoML
has fixed it, and this module can go.
"""

from __future__ import annotations

from typing import TypeVar

from bentoml import SyncHTTPClient

Client = TypeVar("Client")


def fix_task_submit(client: Client) -> Client:
    """``client`` with ``submit`` working (a sync client; anything else is returned untouched)."""
    if isinstance(client, SyncHTTPClient) and not hasattr(client, "_opened_files"):
        client._opened_files = client._file_manager._opened_files  # type: ignore[attr-defined]
    return client
