"""Hub access for the board commands: the API client, one-line errors, and a bounded first request.

``huggingface_hub`` retries a refused connection with backoff (half a minute of retry lines) and waits on a silent
server without a deadline. So every board command that writes to or reads from the Hub asks one cheap question
first (:func:`check_reachable`), in a daemon thread joined with the harness's Hub deadline (``EMPATHY_HUB_TIMEOUT_S``,
default 2 s, as for model lookups): an unreachable or silent Hub is one clear line within seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.core.errors import HarnessError

if TYPE_CHECKING:
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import DatasetInfo, KernelInfo, ModelInfo, SpaceInfo

    RepoInfo = ModelInfo | DatasetInfo | SpaceInfo | KernelInfo


def hub_api(endpoint: str | None, token: str | None) -> HfApi:
    """An ``HfApi`` that authenticates only with ``token`` (never a token saved on this machine)."""
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint, token=token or False, library_name="empathy-harness")


def hub_error(exc: Exception, what: str, *, retries: int = 0) -> HarnessError:
    """A :class:`HarnessError` for a failed Hub call: what failed, why, and what to do."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    if isinstance(exc, OfflineModeIsEnabled):
        return HarnessError(f"{what}: offline mode is on (HF_HUB_OFFLINE) — unset it to reach the Hub")
    if isinstance(exc, RepositoryNotFoundError):
        return HarnessError(f"{what}: the repo does not exist or this token cannot see it — check the repo id and "
                            "give a token with access to it (HF_TOKEN)")
    if isinstance(exc, ValueError) and not isinstance(exc, HfHubHTTPError):
        if "metadata in README.md" in str(exc):
            detail = " ".join(line.strip("- ") for line in str(exc).splitlines()[1:3])
            return HarnessError(f"{what}: the Hub rejected README.md's YAML front matter ({detail or reason}) — "
                                "fix the card and rebuild")
        return HarnessError(f"{what}: {reason} — check the repo id ('org/name') and the options")
    if not isinstance(exc, HfHubHTTPError):
        return HarnessError(f"{what}: cannot reach the Hub ({type(exc).__name__}: {reason}) — check the endpoint "
                            "and the network")
    status = exc.response.status_code
    server = f" ({exc.server_message.strip()[:200]})" if exc.server_message else ""
    if status == 412:
        return HarnessError(f"{what}: the board changed on the Hub since it was read (another publish landed "
                            "first); nothing was written — rebuild the site from the Hub and publish again")
    if status in (401, 403):
        return HarnessError(f"{what}: the Hub refused the request (HTTP {status}){server} — give a token with "
                            "write access to the repo (HF_TOKEN)")
    if status == 429 or status >= 500:
        return HarnessError(f"{what}: the Hub kept failing (HTTP {status}){server} after {retries} retries — try "
                            "again later (publishing again is safe: what already landed is not committed twice)")
    return HarnessError(f"{what}: the Hub refused the request (HTTP {status}){server} — check the repo id, the "
                        "token's access and the files")


def check_reachable(api: HfApi, repo: str, *, repo_type: str, what: str,
                    revision: str | None = None) -> RepoInfo | None:
    """Ask the Hub about ``repo`` once, within the deadline; any answer (a 404 included) means it is reachable.

    Returns:
        The repo's info, or None when the Hub answered with an error (the call that follows reports it in its own
        words).

    Raises:
        HarnessError: no answer within the deadline, or no connection at all (refused, unknown host, offline
            mode), in one line naming ``what`` failed and the fix.
    """
    from huggingface_hub.errors import HfHubHTTPError

    from harness.core.hub import HubSilent, hub_deadline, within_deadline

    deadline = hub_deadline()
    try:
        info: RepoInfo = within_deadline(
            lambda t: api.repo_info(repo, repo_type=repo_type, revision=revision, timeout=t), deadline,
            name="hub-reach")
    except HubSilent:
        raise HarnessError(f"{what}: the Hub at {api.endpoint} did not answer within {deadline:g} s — check "
                           "--endpoint and the network (or raise EMPATHY_HUB_TIMEOUT_S for a slow link)") from None
    except HfHubHTTPError:
        return None
    except Exception as exc:
        raise hub_error(exc, what) from exc
    return info
