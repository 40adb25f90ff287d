"""OpenAI-compatible server URLs, in one normal form (the same server is one identity however it is written)."""

from __future__ import annotations

from urllib.parse import urlsplit

from harness.core.errors import HarnessError

OPENAI_URL = "https://api.openai.com/v1"


def chat_completions_url(base_url: str) -> str:
    """``http://host:8000``, ``…/v1`` or ``…/v1/chat/completions`` → the chat-completions endpoint."""
    url = base_url.strip().rstrip("/")
    if not urlsplit(url).scheme.startswith("http"):
        raise HarnessError(f"judge base URL {base_url!r} is not an http(s) URL; give e.g. http://127.0.0.1:8000/v1")
    if url.endswith("/chat/completions"):
        return url
    if not url.endswith("/v1"):
        url += "/v1"
    return url + "/chat/completions"
