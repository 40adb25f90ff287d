"""Submitting a run to a board on the Hub (a pull request on its dataset repo), and pulling a board back down."""

from __future__ import annotations

from pathlib import Path

from harness.core.errors import HarnessError
from harness.evaluate.runs import Run, load_run
from leaderboard.admit import safe_run_id
from leaderboard.hub import check_reachable, hub_api, hub_error
from leaderboard.publish import refuse_token
from leaderboard.trust import RUN_FILES

#: What a submission carries: the run folder's record files (models, caches and references stay at home).
SUBMISSION_FILES = RUN_FILES
SUBMISSIONS = "submissions"


def submit(run_dir: Path, *, repo: str, run_id: str, endpoint: str | None = None, token: str | None = None,
           note: str | None = None, run: Run | None = None) -> str:
    """Open a pull request on the board's dataset repo adding ``submissions/<run_id>/`` with the run's files.

    The run is validated with :func:`~harness.evaluate.runs.load_run` first: an invalid run is never sent.

    Args:
        run_dir: A completed run folder (``empathy eval --output``).
        repo: The board's dataset repo id (``org/name``).
        run_id: The run's id on the board, e.g. ``Qwen__Qwen2.5-0.5B-Instruct/2025-01-31``.
        endpoint: The Hub URL (default: the one ``huggingface_hub`` is configured with).
        token: A Hub token (read access is enough to open a pull request); sent only in the Authorization header.
        note: The first line of the pull request's description (the unhealthy-judge banner, when there is one).
        run: ``run_dir`` as :func:`~harness.evaluate.runs.load_run` just read it (not read again).

    Returns:
        The pull request's URL.

    Raises:
        HarnessError: the run is invalid, the run id unsafe, the board missing, or the Hub unreachable (within the
            Hub deadline, ``EMPATHY_HUB_TIMEOUT_S``) or refused the request.
    """
    from huggingface_hub import CommitOperation, CommitOperationAdd

    run = run if run is not None and run.path == run_dir else load_run(run_dir)  # (the caller's, already checked)
    files = submission_files(run, run_id, token)
    operations: list[CommitOperation] = [
        CommitOperationAdd(path_in_repo=f"{SUBMISSIONS}/{run_id}/{name}", path_or_fileobj=data)
        for name, data in files.items()
    ]
    what = f"submitting run {run_id!r} to board {repo!r}"
    api = hub_api(endpoint, token)
    check_reachable(api, repo, repo_type="dataset", what=what)
    description = (f"Run `{run_id}` of `{run.result.model}`, judged by `{run.result.judge.fingerprint}`, validated "
                   "with `load_run` before submission.")
    try:
        info = api.create_commit(
            repo, operations, repo_type="dataset", create_pr=True,
            commit_message=f"Submit {run.result.model} ({run_id})",
            commit_description=f"**{note}**\n\n{description}" if note else description,
        )
    except Exception as exc:  # mapped to a user-facing error; unexpected ones re-raised as they are
        error = mapped_error(exc, what)
        if error is None:
            raise
        raise error from exc
    if info.pr_url is None:
        raise HarnessError(f"{what}: these exact files are already on the board under {SUBMISSIONS}/{run_id}/ — "
                           "nothing to submit")
    return info.pr_url


def submission_files(run: Run, run_id: str, token: str | None) -> dict[str, bytes]:
    """The files a submission sends, after the checks that need no Hub (a safe run id, no token in a file)."""
    if not safe_run_id(run_id):
        raise HarnessError(f"run id {run_id!r} is not usable as a folder on the board: use letters, digits, '_', '-' "
                           "and '.', with at most one '/' (e.g. 'Org__Model/2025-01-31')")
    files = {name: (run.path / name).read_bytes() for name in SUBMISSION_FILES if (run.path / name).is_file()}
    refuse_token(files, token, run.path)
    return files


def pull_board(repo: str, dest: Path, *, endpoint: str | None = None, token: str | None = None) -> tuple[Path, str]:
    """Download the board's dataset repo at its current main into ``dest``; returns ``(dest, commit sha)``.

    The sha is recorded in the built site, so that publishing refuses to overwrite a board that changed since.
    """
    from huggingface_hub import snapshot_download

    what = f"downloading board {repo!r}"
    api = hub_api(endpoint, token)
    info = check_reachable(api, repo, repo_type="dataset", what=what, revision="main")
    try:  # (no info: the Hub answered with an error, which this request reports in its own words)
        sha = (info if info is not None else api.repo_info(repo, repo_type="dataset", revision="main")).sha or "main"
        path = snapshot_download(repo_id=repo, repo_type="dataset", local_dir=dest, endpoint=endpoint,
                                 token=token or False, library_name="empathy-harness", revision=sha)
    except Exception as exc:
        error = mapped_error(exc, what)
        if error is None:
            raise
        raise error from exc
    return Path(path), sha


def landed_dates(repo: str, folder: Path, sha: str, *, endpoint: str | None = None,
                 token: str | None = None) -> dict[Path, tuple[str, str]]:
    """When each submission in a pulled board repo arrived, by run folder: (date, commit id).

    The commit that last changed its ``results.json`` on the board repo: the Hub's record, not a date the submitter
    writes.
    """
    subs = folder / SUBMISSIONS
    runs = {p.relative_to(folder).as_posix(): p.parent for p in sorted(subs.rglob("results.json"))} \
        if subs.is_dir() else {}
    what = f"reading when the submissions of board {repo!r} arrived"
    api = hub_api(endpoint, token)
    out: dict[Path, tuple[str, str]] = {}
    names = list(runs)
    for start in range(0, len(names), 100):
        try:
            infos = api.get_paths_info(repo, names[start:start + 100], expand=True, revision=sha, repo_type="dataset")
        except Exception as exc:
            error = mapped_error(exc, what)
            if error is None:
                raise
            raise error from exc
        for info in infos:
            last = getattr(info, "last_commit", None)
            if last is not None and info.path in runs:
                out[runs[info.path]] = (last.date.isoformat() if last.date else "", last.oid)
    return out


def mapped_error(exc: Exception, what: str) -> HarnessError | None:
    """A Hub call's failure as one clear error (no copy on disk, a connection or HTTP failure), else None."""
    import httpx2
    from huggingface_hub.errors import LocalEntryNotFoundError

    if isinstance(exc, LocalEntryNotFoundError):
        return HarnessError(f"{what}: the Hub could not be reached and no copy is on disk — check the endpoint, "
                            "the network and HF_HUB_OFFLINE")
    if isinstance(exc, (OSError, ValueError, httpx2.HTTPError)):
        return hub_error(exc, what)
    return None
