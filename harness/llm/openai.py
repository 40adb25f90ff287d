"""A judge behind any OpenAI-compatible chat-completions server (OpenAI, vLLM, TGI, ``transformers serve`` …).

Requests run concurrently on an asyncio loop (``concurrency`` at a time), each with a timeout. 429, 408, 409,
5xx, timeouts, dropped connections and unreadable JSON are retried with exponential backoff and full jitter,
waiting at least what a ``Retry-After`` header asks; when the retries run out the item gets a
:class:`~harness.llm.base.NoAnswer` (unscored, with the reason) and nothing is cached, so a re-run asks again.
Other 4xx errors (bad model name, bad request) are not retried.

Logits mode reads the verdict label's probability from ``top_logprobs`` at the token where the reply writes its
label; servers that return no log-probabilities are detected by one probe and judged in generate mode instead
(the manifest says so). The API key is read from the environment variable named by ``api_key_env`` and lives only
in the request header: it is never part of settings, cache keys, results or log lines.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import json
import math
import os
import random
import re
import threading
import time
from collections.abc import Coroutine, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from harness.core.errors import HarnessError
from harness.core.urls import OPENAI_URL, chat_completions_url, public_url
from harness.llm.base import JudgeRequest, NoAnswer

if TYPE_CHECKING:
    import aiohttp


T = TypeVar("T")

#: Most servers cap ``top_logprobs`` at 20 (OpenAI's limit).
TOP_LOGPROBS = 20
#: Logits mode: enough tokens for "Verdict: X" (the label is read where it appears).
LOGITS_MAX_TOKENS = 8
RETRY_STATUSES = frozenset({408, 409, 429})
#: Longest wait a Retry-After header can impose, in seconds.
MAX_RETRY_AFTER_S = 300.0


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, base_s: float, cap_s: float, retry_after: float | None, rng: random.Random) -> float:
    """Exponential backoff with full jitter, never shorter than the server's Retry-After."""
    delay = rng.uniform(0, min(cap_s, base_s * 2**attempt))
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
    return delay


_LABEL_STRIP = " \t\n*'\"`[(.:"


def label_probs_from_logprobs(
    content: Sequence[dict[str, Any]], labels: Sequence[str], prefix: str
) -> dict[str, float]:
    """Label probabilities at the first generated token that *is* a label (after an optional 'Verdict:').

    Mass of every top-logprob alternative that reads as a label (with or without spaces, quotes, asterisks) is
    summed per label and renormalised; ``_mass`` holds the total before renormalising (how sure the model was that it
    was writing a label). Returns {} when the reply never writes a label at a verdict position.
    """
    word = re.escape(prefix.rstrip(": ").strip())
    lead = re.compile(rf"[\s*\[\(\"'`]*(?:{word}[\s*]*:?)?[\s*\[\(\"'`]*", re.IGNORECASE)
    before = ""
    for pos in content:
        token = str(pos.get("token", ""))
        if token.strip(_LABEL_STRIP) in labels and lead.fullmatch(before):
            mass = dict.fromkeys(labels, 0.0)
            alternatives = list(pos.get("top_logprobs") or [])
            if not any(a.get("token") == token for a in alternatives):
                alternatives.append({"token": token, "logprob": pos.get("logprob", 0.0)})
            for alt in alternatives:
                lab = str(alt.get("token", "")).strip(_LABEL_STRIP)
                if lab in mass and alt.get("logprob") is not None:
                    mass[lab] += math.exp(float(alt["logprob"]))
            total = sum(mass.values())
            return {**{lab: p / total for lab, p in mass.items()}, "_mass": min(1.0, total)} if total > 0 else {}
        before += token
    return {}


class _Failure(Exception):
    """One failed attempt; ``retry`` says whether another attempt may succeed."""

    def __init__(self, reason: str, retry: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry
        self.retry_after = retry_after


class OpenAIBackend:
    """Judge requests as chat completions against one OpenAI-compatible endpoint."""

    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        *,
        revision: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        seed: int = 0,
    ) -> None:
        self.model_id = model
        self.revision = revision
        # the URL requests go to keeps the base URL's query string and user-info (basic auth), which may hold a
        # key: only its public form (``endpoint``) is shown, recorded or counted in stats
        self._url = chat_completions_url(base_url or OPENAI_URL)
        self.endpoint = public_url(self._url)
        self.api_key_env = api_key_env
        key = os.environ.get(api_key_env, "")
        if not key and urlsplit(self.endpoint).hostname == "api.openai.com":
            raise HarnessError(
                f"the OpenAI judge needs an API key: set the environment variable {api_key_env} (or name another "
                "with --judge-api-key-env); keys are never taken from the command line"
            )
        if key and "@" in urlsplit(self._url).netloc:
            raise HarnessError(
                f"the server URL {self.endpoint} is given with a user name (user:password@, sent as basic auth) "
                f"and {api_key_env} holds an API key, but a request carries one or the other: drop the user-info "
                f"from the URL, or unset {api_key_env} (or name another variable with --judge-api-key-env)"
            )
        self._headers = {"Content-Type": "application/json"}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self.concurrency = max(1, concurrency)
        self.timeout_s = timeout_s
        self.max_retries = max(0, max_retries)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._rng = random.Random(seed)
        self.counts = {"requests": 0, "retries": 0, "failed_items": 0}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._session: aiohttp.ClientSession | None = None
        self._sem: asyncio.Semaphore | None = None

    # -- event loop in a background thread (the judge itself is synchronous) -----------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=loop.run_forever, name="judge-http", daemon=True)
            self._thread.start()
            self._loop = loop
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _open(self) -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
        import aiohttp

        if self._session is None or self._sem is None:
            connector = aiohttp.TCPConnector(limit=self.concurrency)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers)
            self._sem = asyncio.Semaphore(self.concurrency)
        return self._session, self._sem

    # -- one request ------------------------------------------------------------------------------------

    def _body(self, request: JudgeRequest, logits: bool, max_tokens: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": request.messages(),
            "max_tokens": max_tokens,
            "temperature": 0,
            "seed": 0,
        }
        if logits:
            body.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        return body

    async def _attempt(self, body: dict[str, Any]) -> dict[str, Any]:
        import aiohttp

        session, sem = await self._open()
        async with sem:
            self.counts["requests"] += 1
            try:
                timeout = aiohttp.ClientTimeout(total=self.timeout_s)
                async with session.post(self._url, json=body, timeout=timeout) as resp:
                    text = await resp.text()
                    status = resp.status
                    retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
            except TimeoutError as exc:  # (aiohttp's timeouts; asyncio.TimeoutError is this class on 3.11)
                raise _Failure(f"timed out after {self.timeout_s:g} s", retry=True) from exc
            except aiohttp.ClientError as exc:
                raise _Failure(f"connection failed ({type(exc).__name__})", retry=True) from exc
        if status != 200:
            detail = " ".join(text.split())[:200]
            retry = status in RETRY_STATUSES or status >= 500
            raise _Failure(f"HTTP {status}: {detail}" if detail else f"HTTP {status}", retry, retry_after)
        try:
            data = json.loads(text)
            choice = data["choices"][0]
            if not isinstance(choice["message"], dict):
                raise TypeError("message is not an object")
            return dict(choice)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise _Failure(f"malformed response ({type(exc).__name__}: {str(exc)[:80]})", retry=True) from exc

    async def _ask(self, body: dict[str, Any]) -> dict[str, Any] | NoAnswer:
        for attempt in range(self.max_retries + 1):
            try:
                return await self._attempt(body)
            except _Failure as failure:
                if not failure.retry:
                    self.counts["failed_items"] += 1
                    return NoAnswer(f"judge server refused the request: {failure.reason}")
                if attempt == self.max_retries:
                    self.counts["failed_items"] += 1
                    return NoAnswer(f"{failure.reason} (gave up after {attempt + 1} attempts)")
                self.counts["retries"] += 1
                await asyncio.sleep(
                    backoff_delay(attempt, self.backoff_s, self.max_backoff_s, failure.retry_after, self._rng)
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def _answers(
        self, requests: Sequence[JudgeRequest], logits: bool, max_tokens: int
    ) -> Iterator[tuple[list[int], list[Any]]]:
        """Yield (indices, answers) as requests complete; pending requests are cancelled if the caller stops."""
        futures = {self._run(self._ask(self._body(r, logits, max_tokens))): i for i, r in enumerate(requests)}
        pending = set(futures)
        try:
            while pending:
                done, pending = concurrent.futures.wait(
                    pending, timeout=0.25, return_when=concurrent.futures.FIRST_COMPLETED
                )
                if done:
                    finished = sorted(done, key=futures.__getitem__)
                    yield [futures[f] for f in finished], [self._convert(f.result(), requests[futures[f]], logits)
                                                           for f in finished]
        finally:
            for f in pending:
                f.cancel()

    @staticmethod
    def _convert(choice: dict[str, Any] | NoAnswer, request: JudgeRequest, logits: bool) -> Any:
        if isinstance(choice, NoAnswer):
            return choice
        text = str(choice["message"].get("content") or "")
        if not logits:
            return text
        content = (choice.get("logprobs") or {}).get("content") or []
        prefix = request.prefill or "Verdict:"
        return label_probs_from_logprobs(content, request.labels, prefix)

    # -- JudgeBackend --------------------------------------------------------------------------------------

    def label_probs(self, requests: Sequence[JudgeRequest]) -> Iterator[tuple[list[int], list[Any]]]:
        """Label probabilities from ``top_logprobs`` (see :func:`label_probs_from_logprobs`)."""
        return self._answers(requests, logits=True, max_tokens=LOGITS_MAX_TOKENS)

    def generate(self, requests: Sequence[JudgeRequest], max_new_tokens: int) -> Iterator[tuple[list[int], list[Any]]]:
        """Written answers (greedy: temperature 0)."""
        return self._answers(requests, logits=False, max_tokens=max_new_tokens)

    def supports_logprobs(self) -> bool:
        """One tiny request: does the server return ``top_logprobs``? Raises if the server cannot be reached."""
        probe = JudgeRequest(system="Answer with one letter.", user="Say A.", prefill="", labels=("A",))
        body = self._body(probe, logits=True, max_tokens=1)
        body["top_logprobs"] = 5
        answer = self._run(self._ask(body)).result()
        if isinstance(answer, NoAnswer):
            raise HarnessError(f"judge server {self.endpoint} did not answer a probe request: {answer.reason}. "
                               "Is it running, and does it serve model " + repr(self.model_id) + "?")
        content = (answer.get("logprobs") or {}).get("content") or []
        return bool(content and content[0].get("top_logprobs"))

    def stats(self) -> dict[str, Any]:
        """HTTP counts for the manifest (never the key)."""
        return {"endpoint": self.endpoint, "api_key_env": self.api_key_env, "concurrency": self.concurrency,
                **self.counts}

    def close(self) -> None:
        """Close the HTTP session and stop the loop thread."""
        if self._loop is None:
            return
        if self._session is not None:
            self._run(self._session.close()).result(timeout=10)
            self._session = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None
