"""Publishing a built leaderboard site to the Hugging Face Hub: one commit that makes the dataset repo mirror it.

The dataset repo is read (head commit, file tree), compared with the site, and only what differs is committed —
in one ``create_commit`` whose ``parent_commit`` is the head that was read. A publish that lost a race to another
one is refused by the Hub as a whole (nothing half-written) and reported as a :class:`HarnessError`. An unchanged
site makes no commit. Rate limits and server errors are retried with exponential backoff; other errors are not.

Files on the Hub that the board does not manage (``.gitattributes``, ``submissions/``, anything a maintainer
added under another name) are never deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from harness.core.errors import HarnessError
from leaderboard.hub import check_reachable, hub_api, hub_error

if TYPE_CHECKING:
    from huggingface_hub import HfApi

logger = logging.getLogger(__name__)

#: Top-level names the board owns on the Hub: a file there that the site no longer has is deleted.
BOARD_NAMES = frozenset({"index.html", "leaderboard.json", "leaderboard.csv", "leaderboard.parquet", "README.md",
                         "rejected.json", "results"})
REQUIRED = ("index.html", "leaderboard.json")
BASE_WAIT_S = 1.0
MAX_WAIT_S = 30.0
DEFAULT_MESSAGE = "Update leaderboard"
#: Replaced in tests, so that backoff does not slow them down.
_sleep: Callable[[float], None] = time.sleep
T = TypeVar("T")


@dataclass(frozen=True)
class PublishPlan:
    """What :func:`publish` would commit: every site file (path in the repo, size in bytes) and the message."""

    repo: str
    files: list[tuple[str, int]]
    message: str


def plan_publish(site: Path, *, repo: str, message: str | None = None) -> PublishPlan:
    """The files a publish of ``site`` to the dataset repo ``repo`` would send (a dry run: no Hub request)."""
    files = site_files(site)
    return PublishPlan(repo=repo, files=[(path, len(data)) for path, data in files.items()],
                       message=message or _default_message(files))


def publish(site: Path, *, repo: str, space: str | None = None, endpoint: str | None = None, token: str | None = None,
            message: str | None = None, max_retries: int = 4) -> dict[str, str]:
    """Make the dataset repo ``repo`` (and, with ``space``, a static Space showing the page) mirror ``site``.

    Args:
        site: The folder ``leaderboard build`` wrote (index.html, leaderboard.json, … , results/).
        repo: The board's dataset repo id (``org/name``); created if missing.
        space: A Space id to create (static SDK) and update with index.html and its README.
        endpoint: The Hub URL (default: the one ``huggingface_hub`` is configured with).
        token: A Hub token with write access; only ever sent in the Authorization header. No token: anonymous.
        message: The commit message (default: "Update leaderboard" with the board's build time).
        max_retries: Retries on HTTP 429 / 5xx, waiting 1 s, 2 s, 4 s, … (at most 30 s) between them.

    Returns:
        ``{"dataset_commit": url}`` (plus ``"space_commit"``): the commit each repo's main is now at — the head
        that was already there when nothing had changed.

    Raises:
        HarnessError: the site is not a built board or carries the token; the board changed on the Hub since it
            was read; the Hub refused the request, was unreachable, or kept failing after the retries.
    """
    files = site_files(site)
    refuse_token(files, token, site)
    built_from = _check_board(files, site)
    api = hub_api(endpoint, token)
    check_reachable(api, repo, repo_type="dataset", what=f"publishing to dataset repo {repo!r}")
    text = message or _default_message(files)
    out = {"dataset_commit": with_retries(
        lambda: sync_repo(api, repo, "dataset", files, text, managed=_board_managed(files), built_from=built_from),
        max_retries=max_retries, what=f"publishing to dataset repo {repo!r}")}
    if space is not None:
        page = {"index.html": files["index.html"], "README.md": space_card(space, repo, api.endpoint)}
        out["space_commit"] = with_retries(
            lambda: sync_repo(api, space, "space", page, text, managed=page.__contains__, space_sdk="static"),
            max_retries=max_retries, what=f"publishing to Space {space!r}")
    return out


def _check_board(files: dict[str, bytes], site: Path) -> str | None:
    """A board that can be published: rows, every row's run files present; the Hub commit it was built from."""
    try:
        board = json.loads(files["leaderboard.json"])
    except (KeyError, ValueError) as exc:
        raise HarnessError(f"{site} holds no readable leaderboard.json: build it with 'empathy leaderboard build'") \
            from exc
    rows = board.get("rows") or []
    if not rows:
        raise HarnessError(f"{site}: the board has no rows (every run was refused?) — publishing it would empty the "
                           "board on the Hub; see rejected.json")
    missing = [r.get("run_id") for r in rows if f"results/{r.get('run_id')}/results.json" not in files]
    if missing:
        raise HarnessError(f"{site}: no run files for {len(missing)} row(s) (e.g. results/{missing[0]}/): every "
                           "number on the board must come with its run — rebuild the site")
    parent = board.get("built_from_commit")
    return str(parent) if parent else None


def site_files(site: Path) -> dict[str, bytes]:
    """Every file of a built site, by its path in the repo (POSIX, sorted); hidden files and folders left out."""
    if not site.is_dir():
        raise HarnessError(f"leaderboard site {site} is not a folder — build it first with 'empathy leaderboard build'")
    files = {
        path.relative_to(site).as_posix(): path.read_bytes()
        for path in sorted(site.rglob("*"))
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(site).parts)
    }
    missing = [name for name in REQUIRED if name not in files]
    if missing:
        raise HarnessError(f"leaderboard site {site} has no {', '.join(missing)}: it is not a built board — "
                           "rebuild it with 'empathy leaderboard build'")
    return files


def refuse_token(files: dict[str, bytes], token: str | None, where: Path) -> None:
    """Refuse to upload a file that contains the token (a secret must never become a public file)."""
    if not token:
        return
    leaking = [path for path, data in files.items() if token.encode() in data]
    if leaking:
        raise HarnessError(f"{where / leaking[0]} contains the Hub token; nothing was uploaded — remove the token "
                           "from the files and rebuild them")


def sync_repo(api: HfApi, repo: str, repo_type: str, files: dict[str, bytes], message: str, *,
              managed: Callable[[str], bool], space_sdk: str | None = None, built_from: str | None = None) -> str:
    """Create ``repo`` if needed and commit what differs from ``files`` on its main; the URL of main's commit."""
    from huggingface_hub import CommitOperation, CommitOperationAdd, CommitOperationDelete
    from huggingface_hub.hf_api import RepoFile

    api.create_repo(repo, repo_type=repo_type, exist_ok=True, space_sdk=space_sdk)
    head = api.repo_info(repo, repo_type=repo_type, revision="main").sha
    remote: dict[str, RepoFile] = {}
    if head is not None:
        tree = api.list_repo_tree(repo, repo_type=repo_type, recursive=True, revision=head)
        remote = {entry.path: entry for entry in tree if isinstance(entry, RepoFile)}
    operations: list[CommitOperation] = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=data)
                                         for path, data in files.items() if not _same(remote.get(path), data)]
    operations += [CommitOperationDelete(path_in_repo=path) for path in sorted(remote)
                   if path not in files and managed(path)]
    if not operations:
        logger.info("%s %s is up to date at %s: no commit", repo_type, repo, head)
        return commit_url(api.endpoint, repo_type, repo, head or "main")
    if built_from is not None and head != built_from:
        raise HarnessError(f"the board on {repo} changed since this site was built from it (built from commit "
                           f"{built_from}, main is now {head}): nothing was written — rebuild with --from-hub "
                           "and publish again")
    info = api.create_commit(repo, operations, commit_message=message, repo_type=repo_type, parent_commit=head)
    return info.commit_url


def with_retries(action: Callable[[], T], *, max_retries: int, what: str) -> T:
    """``action()``, again after 1 s, 2 s, 4 s, … while the Hub answers 429 or 5xx; any other error at once."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    attempt = 0
    while True:
        try:
            return action()
        except HfHubHTTPError as exc:
            status = exc.response.status_code
            if not (status == 429 or status >= 500) or attempt >= max_retries:
                raise hub_error(exc, what, retries=attempt) from exc
            wait = min(MAX_WAIT_S, BASE_WAIT_S * 2**attempt)
            attempt += 1
            logger.warning("%s: the Hub answered HTTP %d; retry %d/%d in %.0f s", what, status, attempt,
                           max_retries, wait)
            _sleep(wait)
        except (OSError, ValueError, httpx2.HTTPError) as exc:  # unreachable, offline, README metadata refused
            raise hub_error(exc, what) from exc


def commit_url(endpoint: str, repo_type: str, repo: str, sha: str) -> str:
    """The web URL of a commit (the form ``create_commit`` returns)."""
    prefix = "" if repo_type == "model" else f"{repo_type}s/"
    return f"{endpoint.rstrip('/')}/{prefix}{repo}/commit/{sha}"


def space_card(space: str, repo: str, endpoint: str) -> bytes:
    """The Space's README: ``sdk: static`` front matter (the Hub serves index.html) and a link to the data."""
    title = space.rsplit("/", 1)[-1]
    return (f"---\ntitle: {json.dumps(title)}\nsdk: static\napp_file: index.html\npinned: false\n---\n\n"
            f"# {title}\n\nThe leaderboard page. Its data, with every run behind it: "
            f"[{repo}]({endpoint.rstrip('/')}/datasets/{repo}).\n").encode()


def _same(remote: object, data: bytes) -> bool:
    """Whether the file on the Hub has these bytes: git blob id for regular files, sha256 for LFS ones."""
    from huggingface_hub.hf_api import RepoFile

    if not isinstance(remote, RepoFile) or remote.size != len(data):
        return False
    if remote.lfs is not None:
        return bool(remote.lfs.sha256 == hashlib.sha256(data).hexdigest())
    return bool(remote.blob_id == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest())


def _board_managed(files: Iterable[str]) -> Callable[[str], bool]:
    owned = BOARD_NAMES | {path.split("/", 1)[0] for path in files}
    return lambda path: path.split("/", 1)[0] in owned


def _default_message(files: dict[str, bytes]) -> str:
    try:
        built = json.loads(files["leaderboard.json"]).get("built_at")
    except (KeyError, ValueError, AttributeError):
        built = None
    return f"{DEFAULT_MESSAGE} (built {built})" if isinstance(built, str) and built else DEFAULT_MESSAGE
