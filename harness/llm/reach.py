"""Is a server there? One quick request to an OpenAI-compatible server before any work is started.

lm-eval's chat-completions client retries a dead server for minutes and then reports a load failure; asking
``GET …/v1/models`` once, up front, turns a wrong port or a server that is not up yet into one clear line.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from urllib.parse import unquote, urlsplit, urlunsplit

from harness.core.errors import HarnessError
from harness.core.urls import api_url, public_url

#: Seconds the server has to answer ``GET /v1/models`` (a listing: no model runs, so a busy server answers too).
PROBE_TIMEOUT_S = 5.0


def models_url(base_url: str) -> str:
    """The ``…/v1/models`` URL of a server given as ``http://host:port``, ``…/v1`` or ``…/v1/chat/completions``.

    The base URL's query string and user-info are kept (see :func:`~harness.core.urls.api_url`).
    """
    return api_url(base_url, "/models")


def _probe_request(url: str) -> urllib.request.Request:
    """A GET of ``url``; its user-info (which urllib would take for part of the host) goes as basic auth."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return urllib.request.Request(url)
    login = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}".encode()
    bare = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    return urllib.request.Request(bare, headers={"Authorization": "Basic " + base64.b64encode(login).decode()})


def check_server(base_url: str, *, option: str, model: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Raise a one-line error naming ``option`` when nothing answers at ``base_url``.

    Any HTTP answer counts as "there" (a 401 or 404 is the server speaking: the key and the model name are
    checked by the requests themselves); a refused connection, an unknown host or silence is not.
    """
    url = models_url(base_url)
    # no proxies from the environment: the clients that follow (aiohttp, in lm-eval and the judge) use none either
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(_probe_request(url), timeout=timeout_s):
            return
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        why = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
        port = urlsplit(url).port or (443 if url.startswith("https") else 80)
        raise HarnessError(
            f"{option} {public_url(base_url)}: no server answers at {public_url(url)} ({why}): start the server "
            f"that serves {model!r} (e.g. 'vllm serve {model} --port {port}'), or fix the URL"
        ) from exc
