"""A run's scores where users look: ``.eval_results/empathy.yaml`` in the model's Hub repo, as a pull request.

The Hub shows evaluation results stored in a model repo's ``.eval_results/*.yaml`` on the model page and in the
leaderboard of the benchmark dataset they name (https://huggingface.co/docs/hub/eval-results). One entry per number
(``huggingface_hub.EvalResultEntry``, serialised by ``eval_result_entries_to_yaml``): the win rate against each
reference (``empathy_winrate_vs_base``, ``empathy_winrate_vs_direct``: the lm-eval task names) and each rubric mean
(``empathy_rubric_<dimension>``, 1–5), all with the board's dataset repo as the benchmark (``dataset.id``, at the
commit read just before: ``dataset.revision``), the run's date, and the run as the source: its fingerprint (the
sha256 of its results.json) in ``source.name``, its folder on the board in ``source.url``, and in ``notes`` the judge
fingerprint, the CI and the dialogues scored. The file is added in one commit on a pull request: the model's owner
decides. A model repo that does not exist, or a token that may not open pull requests there, is refused before
anything is written, as is a run that is not of that model (its candidate's Hub id), a demo run, or a run whose
judge failed its health check. The Hub lists the results on the board's own leaderboard only once the board's
dataset repo is a registered benchmark: its ``eval.yaml`` (written by ``leaderboard build``, :func:`benchmark_yaml`)
names the tasks, and the Hub adds the repo to its benchmark allow-list on request.
"""

from __future__ import annotations

from typing import Any

import yaml

from harness import __version__
from harness.core.errors import HarnessError
from harness.evaluate.runs import Run, run_fingerprint
from leaderboard.hub import check_reachable, hub_api

EVAL_RESULTS_FILE = ".eval_results/empathy.yaml"
HEAD_TO_HEAD = "vs_baseline"


def eval_entries(run: Run, *, board_repo: str, run_id: str, board_revision: str | None = None,
                 endpoint: str | None = None) -> list[Any]:
    """The run's numbers as ``EvalResultEntry`` objects (win rates, rubric means), the board as the benchmark."""
    from huggingface_hub import EvalResultEntry

    r = run.result
    base = (endpoint or "https://huggingface.co").rstrip("/")
    common: dict[str, Any] = {
        "dataset_id": board_repo, "dataset_revision": board_revision, "date": r.provenance.time,
        "source_url": f"{base}/datasets/{board_repo}/tree/main/submissions/{run_id}",
        "source_name": f"empathy-harness run {run_fingerprint(run)}",
    }
    model = r.provenance.systems["candidate"].model
    judge = (f"model revision {model.revision or 'unrecorded'} (fingerprint {model.fingerprint}); judge "
             f"{r.judge.fingerprint}; empathy-harness {r.provenance.harness_version or __version__}")
    out = []
    for name, stats in sorted(r.comparisons.items()):
        if name == HEAD_TO_HEAD or stats.win_rate is None:
            continue
        ci = "" if stats.ci_low is None else f"; 95% CI [{stats.ci_low:.4f}, {stats.ci_high:.4f}]"
        out.append(EvalResultEntry(task_id=f"empathy_winrate_{name}", value=round(stats.win_rate, 4),
                                   notes=f"win rate (ties 1/2) over {stats.n_scored} dialogues{ci}; {judge}",
                                   **common))
    for dim, s in sorted(r.rubric.items()):
        if s.mean is None:
            continue
        ci = "" if s.ci_low is None else f"; 95% CI [{s.ci_low:.3f}, {s.ci_high:.3f}]"
        out.append(EvalResultEntry(task_id=f"empathy_rubric_{dim}", value=round(s.mean, 4),
                                   notes=f"rubric mean 1-5 over {s.n_scored} replies{ci}; {judge}", **common))
    if not out:
        raise HarnessError(f"{run.path}: no scored comparison or rubric dimension: no result to publish")
    return out


def benchmark_yaml(name: str, protocol: Any) -> str:
    """The board repo's ``eval.yaml``: the board as a Hub benchmark, one task per published number."""
    comparisons = [protocol.anchor.comparison, *protocol.comparisons]
    tasks = [{"id": f"empathy_winrate_{c}", "config": "default", "split": "train"} for c in comparisons]
    tasks += [{"id": f"empathy_rubric_{d}", "config": "default", "split": "train"} for d in protocol.rubric]
    doc = {"name": name, "description": (
        f"Empathy of small language models, judged pairwise in both orders by one fixed judge "
        f"({protocol.judge_fingerprint}) on the same {protocol.dataset.n} dialogues: win rates (ties 1/2) vs the "
        "references and rubric means (1-5). Made with empathy-harness."),
        "evaluation_framework": "empathy-harness", "tasks": tasks}
    return str(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def eval_results_yaml(entries: list[Any]) -> str:
    """The ``.eval_results`` file: huggingface_hub's own serialisation of the entries."""
    from huggingface_hub import eval_result_entries_to_yaml

    return str(yaml.safe_dump(eval_result_entries_to_yaml(entries), sort_keys=False, allow_unicode=True))


def open_eval_results_pr(run: Run, *, model_repo: str, board_repo: str, run_id: str, endpoint: str | None = None,
                         token: str | None = None, note: str | None = None) -> str:
    """Open a pull request on ``model_repo`` adding :data:`EVAL_RESULTS_FILE`; returns its URL.

    Raises:
        HarnessError: the model repo or the board does not exist or cannot be reached, or the token may not open
            a pull request on the model repo (nothing is written).
    """
    from huggingface_hub import CommitOperationAdd

    what = f"publishing the run's eval results to model repo {model_repo!r}"
    check_publishable(run, model_repo, what, allow_unhealthy_judge=note is not None)
    api = hub_api(endpoint, token)
    board = check_reachable(api, board_repo, repo_type="dataset", what=what)
    if board is None:
        raise HarnessError(f"{what}: the board {board_repo!r} does not exist on the Hub (or this token cannot see "
                           "it): the results would name a benchmark that is not there — check --repo; nothing was "
                           "written")
    if check_reachable(api, model_repo, repo_type="model", what=what) is None:
        raise HarnessError(f"{what}: the repo does not exist or this token cannot see it — check the repo id and "
                           "give a token with access to it (HF_TOKEN); nothing was written")
    entries = eval_entries(run, board_repo=board_repo, run_id=run_id, board_revision=getattr(board, "sha", None),
                           endpoint=endpoint)
    text = eval_results_yaml(entries)
    try:
        info = api.create_commit(
            model_repo, [CommitOperationAdd(path_in_repo=EVAL_RESULTS_FILE, path_or_fileobj=text.encode())],
            repo_type="model", create_pr=True, commit_message=f"Add empathy eval results ({board_repo})",
            commit_description=(f"**{note}**\n\n" if note else "") + (
                f"Scores of run `{run_id}` (fingerprint `{run_fingerprint(run)}`) on the empathy board "
                f"[{board_repo}]({(endpoint or 'https://huggingface.co').rstrip('/')}/datasets/{board_repo}), made "
                f"with empathy-harness: {len(entries)} results."))
    except Exception as exc:
        raise _refused(exc, what, model_repo) from exc
    if info.pr_url is None:
        raise HarnessError(f"{what}: {EVAL_RESULTS_FILE} with these exact results is already in the repo")
    return str(info.pr_url)


def check_publishable(run: Run, model_repo: str, what: str, *, allow_unhealthy_judge: bool = False) -> None:
    """Refuse to put a run's numbers on a model page they do not belong on (before anything is sent).

    The run must be of that very Hub model (its candidate's identity: kind ``hub``, the same repo id), not a demo,
    and judged by a judge that passed its health check (unless ``allow_unhealthy_judge``: tests only, and the pull
    request then says so first).
    """
    r = run.result
    model = r.provenance.systems["candidate"].model
    if r.demo:
        raise HarnessError(f"{what}: {run.path} is a demo run (random models): its numbers are never published")
    if model.kind != "hub" or model.name != model_repo:
        raise HarnessError(f"{what}: the run is of {model.name!r} ({model.kind} model), not of {model_repo!r} — "
                           "eval results go only on the page of the model the run evaluated")
    if not r.health.judge_ok and not allow_unhealthy_judge:
        raise HarnessError(f"{what}: the run's judge failed its health check ({r.health.judge_problem}): its "
                           "numbers do not go on a model page")


def _refused(exc: Exception, what: str, repo: str) -> Exception:
    from huggingface_hub.errors import HfHubHTTPError

    from leaderboard.submit import mapped_error

    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, HfHubHTTPError) and status in (401, 403):
        return HarnessError(f"{what}: the Hub refused the token ({status}): it may not open pull requests on "
                            f"{repo} — use a token with write access (or the 'open pull requests' permission) in "
                            "$HF_TOKEN; nothing was written")
    mapped = mapped_error(exc, what)
    return mapped if mapped is not None else exc
