"""leaderboard.publish against a loopback Hub: one commit mirroring the site, no-op when unchanged, races refused."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download

from harness.core.errors import HarnessError
from leaderboard import publish as publish_module
from leaderboard.publish import plan_publish, publish
from tests.hub_server import LoopbackHub, free_port_url, serve_online, subprocess_env
from tests.servers import silent_endpoint

REPO = "org/empathy-board"
ROWS = [{"model": "org/a", "rank": 1, "bt": 1032.5, "win_rate": 0.61, "run_id": "org__a/run1"},
        {"model": "org/b", "rank": 2, "bt": 987.25, "win_rate": 0.44, "run_id": "org__b/run2"}]
CARD = """---
license: apache-2.0
configs:
- config_name: default
  data_files:
  - split: train
    path: leaderboard.parquet
---
# Empathy leaderboard
"""


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch):
    yield from serve_online(monkeypatch)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "results" / "org__a" / "run1").mkdir(parents=True)
    frame = pd.DataFrame(ROWS)
    frame.to_parquet(root / "leaderboard.parquet", index=False)
    frame.to_csv(root / "leaderboard.csv", index=False)
    (root / "leaderboard.json").write_text(json.dumps({"rows": ROWS, "built_at": "2025-01-31T12:00:00Z"}))
    (root / "index.html").write_text("<!doctype html><title>Empathy</title><table></table>\n")
    (root / "README.md").write_text(CARD)
    (root / "rejected.json").write_text("[]\n")
    (root / "results" / "org__a" / "run1" / "results.json").write_text('{"model": "org/a"}\n')
    (root / "results" / "org__b" / "run2").mkdir(parents=True)
    (root / "results" / "org__b" / "run2" / "results.json").write_text('{"model": "org/b"}\n')
    return root


def site_bytes(site: Path) -> dict[str, bytes]:
    return {p.relative_to(site).as_posix(): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()}


def commit_ops(hub: LoopbackHub) -> list[list[dict]]:
    """The operations of every commit request the hub received (header line left out)."""
    bodies = [r.body for r in hub.requests if r.method == "POST" and "/commit/" in r.path]
    return [[json.loads(line) for line in body.splitlines()][1:] for body in bodies]


def test_plan_lists_every_site_file_with_its_size_and_sends_nothing(hub: LoopbackHub, site: Path):
    plan = plan_publish(site, repo=REPO)
    assert plan.repo == REPO
    assert plan.files == [(path, len(data)) for path, data in site_bytes(site).items()]
    assert plan.message == "Update leaderboard (built 2025-01-31T12:00:00Z)"
    assert plan_publish(site, repo=REPO, message="hello").message == "hello"
    assert hub.requests == []


def test_publish_reads_back_the_same_bytes_and_the_same_rows(hub: LoopbackHub, site: Path, tmp_path: Path):
    urls = publish(site, repo=REPO, endpoint=hub.url)
    repo = hub.repo(REPO)
    assert [c.title for c in repo.history()] == ["Update leaderboard (built 2025-01-31T12:00:00Z)", "initial commit"]
    assert urls == {"dataset_commit": f"{hub.url}/datasets/{REPO}/commit/{repo.main.sha}"}
    for path, data in site_bytes(site).items():
        got = hf_hub_download(REPO, path, repo_type="dataset", endpoint=hub.url, cache_dir=tmp_path / "cache",
                              token=False)
        assert Path(got).read_bytes() == data, path
    script = (f"import json, datasets; ds = datasets.load_dataset({REPO!r}, split='train'); "
              "print(json.dumps(ds.to_list()))")
    done = subprocess.run([sys.executable, "-c", script], env=subprocess_env(hub, tmp_path / "hf"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ROWS


def test_publishing_the_same_site_again_makes_no_commit(hub: LoopbackHub, site: Path):
    first = publish(site, repo=REPO, endpoint=hub.url)
    commits = len(hub.repo(REPO).history())
    second = publish(site, repo=REPO, endpoint=hub.url)
    assert second == first
    assert len(hub.repo(REPO).history()) == commits
    assert len(commit_ops(hub)) == 1  # the second publish sent no commit at all


def test_a_changed_file_is_the_only_file_in_the_next_commit(hub: LoopbackHub, site: Path):
    publish(site, repo=REPO, endpoint=hub.url)
    (site / "leaderboard.csv").write_text("model,rank\norg/a,1\n")
    publish(site, repo=REPO, endpoint=hub.url, message="csv only")
    repo = hub.repo(REPO)
    assert [c.title for c in repo.history()][:2] == ["csv only", "Update leaderboard (built 2025-01-31T12:00:00Z)"]
    last = commit_ops(hub)[-1]
    assert [(op["key"], op["value"]["path"]) for op in last] == [("file", "leaderboard.csv")]
    assert repo.main.files["leaderboard.csv"] == b"model,rank\norg/a,1\n"


def test_files_gone_from_the_site_are_deleted_and_files_the_board_does_not_own_are_kept(hub: LoopbackHub,
                                                                                       site: Path):
    publish(site, repo=REPO, endpoint=hub.url)
    api = HfApi(endpoint=hub.url, token=False)
    api.create_commit(REPO, [CommitOperationAdd("submissions/x/results.json", b"{}"),
                             CommitOperationAdd("LICENSE", b"Apache-2.0")],
                      commit_message="merged submission", repo_type="dataset")
    # org/a leaves the board, org/c joins it
    (site / "results" / "org__a" / "run1" / "results.json").unlink()
    (site / "results" / "org__c" / "run3").mkdir(parents=True)
    (site / "results" / "org__c" / "run3" / "results.json").write_text('{"model": "org/c"}\n')
    rows = [ROWS[1], {**ROWS[0], "model": "org/c", "run_id": "org__c/run3"}]
    (site / "leaderboard.json").write_text(json.dumps({"rows": rows, "built_at": "2025-02-01T12:00:00Z"}))
    publish(site, repo=REPO, endpoint=hub.url)
    ops = sorted((op["key"], op["value"]["path"]) for op in commit_ops(hub)[-1])
    assert ops == [("deletedFile", "results/org__a/run1/results.json"), ("file", "leaderboard.json"),
                   ("file", "results/org__c/run3/results.json")]
    files = hub.repo(REPO).main.files
    assert {"submissions/x/results.json", "LICENSE", ".gitattributes"} <= set(files)
    assert {p: d for p, d in files.items() if p not in {"submissions/x/results.json", "LICENSE", ".gitattributes"}} \
        == site_bytes(site)


def test_a_commit_landing_between_read_and_commit_is_refused_and_nothing_is_half_written(hub: LoopbackHub,
                                                                                         site: Path):
    publish(site, repo=REPO, endpoint=hub.url)
    before = dict(hub.repo(REPO).main.files)
    (site / "leaderboard.csv").write_text("model\norg/late\n")
    (site / "index.html").write_text("<p>new</p>\n")

    def rival() -> None:
        HfApi(endpoint=hub.url, token=False).create_commit(
            REPO, [CommitOperationAdd("leaderboard.json", b'{"rows": []}')], commit_message="rival publish",
            repo_type="dataset")

    with hub.before_next_commit(rival), pytest.raises(HarnessError, match="changed on the Hub since it was read"):
        publish(site, repo=REPO, endpoint=hub.url)
    main = hub.repo(REPO).main
    assert main.title == "rival publish"
    assert main.files == {**before, "leaderboard.json": b'{"rows": []}'}  # the rival's commit, none of ours


def test_server_errors_are_retried_with_exponential_backoff(hub: LoopbackHub, site: Path,
                                                             monkeypatch: pytest.MonkeyPatch):
    waits: list[float] = []
    monkeypatch.setattr(publish_module, "_sleep", waits.append)
    hub.fail("POST", "/commit/", 503, times=2)
    hub.fail("POST", "/repos/create", 429)
    publish(site, repo=REPO, endpoint=hub.url)
    assert waits == [1.0, 2.0, 4.0]  # one backoff over read-and-commit: the 429 on create, then two 503s
    assert len(hub.repo(REPO).history()) == 2  # one publish commit, not three


def test_retries_stop_after_max_retries(hub: LoopbackHub, site: Path, monkeypatch: pytest.MonkeyPatch):
    waits: list[float] = []
    monkeypatch.setattr(publish_module, "_sleep", waits.append)
    hub.fail("POST", "/commit/", 429, times=3)
    with pytest.raises(HarnessError, match=r"kept failing \(HTTP 429\).*after 2 retries"):
        publish(site, repo=REPO, endpoint=hub.url, max_retries=2)
    assert waits == [1.0, 2.0]
    assert len(hub.repo(REPO).history()) == 1


def test_client_errors_are_not_retried(hub: LoopbackHub, site: Path, monkeypatch: pytest.MonkeyPatch):
    waits: list[float] = []
    monkeypatch.setattr(publish_module, "_sleep", waits.append)
    hub.fail("POST", "/commit/", 422)
    with pytest.raises(HarnessError, match=r"refused the request \(HTTP 422\)"):
        publish(site, repo=REPO, endpoint=hub.url)
    assert waits == []
    assert len(commit_ops(hub)) == 1
    assert len(hub.repo(REPO).history()) == 1


def test_space_gets_one_static_commit_with_the_page(hub: LoopbackHub, site: Path):
    urls = publish(site, repo=REPO, space="org/empathy-space", endpoint=hub.url)
    space = hub.repo("org/empathy-space", "space")
    assert space.sdk == "static"
    assert len(space.history()) == 2
    assert urls["space_commit"] == f"{hub.url}/spaces/org/empathy-space/commit/{space.main.sha}"
    assert space.main.files["index.html"] == (site / "index.html").read_bytes()
    card = space.main.files["README.md"].decode()
    assert yaml.safe_load(card.split("---")[1])["sdk"] == "static"
    assert f"datasets/{REPO}" in card
    assert not any(p.endswith(".parquet") for p in space.main.files)
    publish(site, repo=REPO, space="org/empathy-space", endpoint=hub.url)
    assert len(space.history()) == 2


def test_the_token_travels_only_in_the_authorization_header(hub: LoopbackHub, site: Path,
                                                            caplog: pytest.LogCaptureFixture,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch):
    from huggingface_hub import constants

    token = "hf_loopbackSecret0123456789abcdef"
    monkeypatch.setattr(constants, "HF_DEBUG", True)  # the client then logs each request as a curl command
    caplog.set_level(logging.DEBUG)
    publish(site, repo=REPO, space="org/empathy-space", endpoint=hub.url, token=token)
    (site / "leaderboard.csv").write_text("changed\n")
    publish(site, repo=REPO, endpoint=hub.url, token=token)
    out, err = capsys.readouterr()
    assert "/commit/" in caplog.text  # the debug logs were captured
    assert token not in caplog.text + out + err
    assert all(token.encode() not in data for data in site_bytes(site).values())
    assert all(token.encode() not in data for data in hub.repo(REPO).main.files.values())
    assert hub.requests
    for request in hub.requests:
        assert request.headers.get("authorization") == f"Bearer {token}", request.path
        others = {k: v for k, v in request.headers.items() if k != "authorization"}
        assert token not in request.path + json.dumps(others), request.path
        assert token.encode() not in request.body, request.path


def test_a_site_carrying_the_token_is_refused_before_any_request(hub: LoopbackHub, site: Path):
    token = "hf_loopbackSecret0123456789abcdef"
    (site / "results" / "org__a" / "run1" / "manifest.json").write_text(json.dumps({"token": token}))
    with pytest.raises(HarnessError, match="manifest.json contains the Hub token") as info:
        publish(site, repo=REPO, endpoint=hub.url, token=token)
    assert token not in str(info.value)
    assert hub.requests == []


def test_a_folder_that_is_not_a_built_site_is_refused(hub: LoopbackHub, site: Path, tmp_path: Path):
    (site / "index.html").unlink()
    with pytest.raises(HarnessError, match="has no index.html"):
        publish(site, repo=REPO, endpoint=hub.url)
    with pytest.raises(HarnessError, match="is not a folder"):
        plan_publish(tmp_path / "missing", repo=REPO)
    assert hub.requests == []


def test_a_card_the_hub_rejects_and_a_bad_repo_id_are_clear_errors(hub: LoopbackHub, site: Path):
    (site / "README.md").write_text("---\nconfigs: [unclosed\n---\n# board\n")
    with pytest.raises(HarnessError, match="rejected README.md's YAML front matter.*invalid YAML"):
        publish(site, repo=REPO, endpoint=hub.url)
    assert len(hub.repo(REPO).history()) == 1
    with pytest.raises(HarnessError, match="check the repo id"):
        publish(site, repo="not a repo id!", endpoint=hub.url)


def test_an_unreachable_hub_and_offline_mode_are_clear_errors(site: Path, monkeypatch: pytest.MonkeyPatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(HarnessError, match="cannot reach the Hub"):
        publish(site, repo=REPO, endpoint=free_port_url())
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HarnessError, match="offline mode is on"):
        publish(site, repo=REPO, endpoint=free_port_url())


def test_a_silent_hub_is_one_clear_error_within_the_hub_deadline(site: Path, monkeypatch: pytest.MonkeyPatch):
    """A Hub that accepts connections and never answers: one bounded question, not a wait without end."""
    import time

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("EMPATHY_HUB_TIMEOUT_S", raising=False)
    with silent_endpoint() as url:
        start = time.perf_counter()
        with pytest.raises(HarnessError, match=rf"^publishing to dataset repo '{REPO}': the Hub at {url} did not "
                                               r"answer within 2 s — check --endpoint and the network"):
            publish(site, repo=REPO, endpoint=url)
        assert time.perf_counter() - start < 3.0


def test_a_board_without_its_run_files_or_rows_is_not_published(hub: LoopbackHub, site: Path):
    (site / "results" / "org__b" / "run2" / "results.json").unlink()
    with pytest.raises(HarnessError, match="no run files for 1 row"):
        publish(site, repo=REPO, endpoint=hub.url)
    (site / "leaderboard.json").write_text(json.dumps({"rows": []}))
    with pytest.raises(HarnessError, match="the board has no rows"):
        publish(site, repo=REPO, endpoint=hub.url)
    assert commit_ops(hub) == []  # refused before any request


def test_a_board_built_from_an_older_hub_commit_is_not_published(hub: LoopbackHub, site: Path):
    """Two maintainers build from the same head; the second to publish is refused instead of erasing the first."""
    publish(site, repo=REPO, endpoint=hub.url)
    head = hub.repo(REPO).main.sha
    board = json.loads((site / "leaderboard.json").read_text())
    (site / "leaderboard.json").write_text(json.dumps({**board, "built_from_commit": head}))
    other = site.parent / "other"
    import shutil

    shutil.copytree(site, other)
    (other / "index.html").write_text("<!doctype html><title>B</title>\n")
    publish(other, repo=REPO, endpoint=hub.url)  # B publishes first
    (site / "index.html").write_text("<!doctype html><title>A</title>\n")
    with pytest.raises(HarnessError, match="changed since this site was built"):
        publish(site, repo=REPO, endpoint=hub.url)  # A's build is stale
    assert hub.repo(REPO).main.files["index.html"] == b"<!doctype html><title>B</title>\n"
