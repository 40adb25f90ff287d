"""OpenAI-compatible server URLs: the request URL, and the public form that may be recorded or shown.

A base URL may carry what only the request needs: a query string (Azure's ``?api-version=…``, or a key a proxy
reads from ``?api_key=…``) and user-info (``user:password@``, sent as basic auth). Requests keep both
(:func:`api_url`); everything that is written down or printed (model identities, manifests, error messages) uses
:func:`public_url`, which keeps the scheme, host, port and path only.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from harness.core.errors import HarnessError

OPENAI_URL = "https://api.openai.com/v1"
_CHAT = "/chat/completions"


def public_url(url: str) -> str:
    """``url`` without its query string, fragment and user-info: the form results, manifests and messages show."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # e.g. an unclosed IPv6 bracket: nothing of it is shown
        return "(malformed URL)"
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def api_url(base_url: str, endpoint: str = _CHAT) -> str:
    """The request URL of ``endpoint`` (``/chat/completions``, ``/models``) on the server at ``base_url``.

    ``http://host:8000``, ``…/v1`` and ``…/v1/chat/completions`` are all accepted; the base URL's query string
    and user-info are kept (``http://h:1/v1?api-version=X`` → ``http://h:1/v1/chat/completions?api-version=X``).
    The result may hold secrets: record or show it only through :func:`public_url`.

    Raises:
        HarnessError: ``base_url`` is not an http(s) URL (the message shows its public form only).
    """
    try:
        parts = urlsplit(base_url.strip())
    except ValueError as exc:
        raise HarnessError(f"server base URL {public_url(base_url)!r} is malformed ({exc}); give e.g. "
                           "http://127.0.0.1:8000/v1") from exc
    if not parts.scheme.lower().startswith("http") or not parts.netloc:
        raise HarnessError(f"server base URL {public_url(base_url)!r} is not an http(s) URL; give e.g. "
                           "http://127.0.0.1:8000/v1")
    path = parts.path.rstrip("/")
    if path.endswith(_CHAT):
        path = path.removesuffix(_CHAT)
    elif not path.endswith("/v1"):
        path += "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path + endpoint, parts.query, ""))


def chat_completions_url(base_url: str) -> str:
    """The chat-completions request URL of the server at ``base_url`` (see :func:`api_url`)."""
    return api_url(base_url, _CHAT)


def redact(text: str, url: str) -> str:
    """``text`` (e.g. a client library's error or log line) with ``url``'s query string and user-info cut out."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return text
    login, _, host = parts.netloc.rpartition("@")
    if parts.query:
        text = text.replace("?" + parts.query, "?…")
    if login:
        text = text.replace(login + "@", "…@")
    if host:  # any URL on this server, however a client re-encoded it (``%20``, ``+``): no query, no user-info
        at = re.escape(host)
        text = re.sub(rf"[^\s/@'\"<>]+@(?={at})", "…@", text)
        text = re.sub(rf"({at}[^\s?'\"<>]*)\?[^\s'\"<>)]*", lambda m: m.group(1) + "?…", text)
    return text
