"""Training-sidecar fixtures: a scripted teacher backend (a mock: no tiny model writes sensible teacher text) and
small training sets built from the bundled dialogues."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.core.resources import bundled_dialogues_path
from harness.core.settings import JudgeSettings
from harness.data.sources import load_jsonl
from harness.llm.registry import register_backend

CALLS: list = []
#: The scripted teacher's diagnosis: the first dimension it names is not the one it finds lacking.
DIAGNOSIS = "Cognitive empathy is fine, but affective is lacking: it never names the feeling.\nLacking: affective"


class ScriptedTeacher:
    """Mock teacher backend: deterministic answers that exercise cleaning; records every request."""

    name, model_id, revision = "scripted-teacher", "scripted-teacher", None

    def generate(self, requests, max_new_tokens):
        out = []
        for r in requests:
            CALLS.append(r)
            if "Lacking: <" in r.user:  # the diagnose prompt
                out.append(DIAGNOSIS)
            elif r.history:
                situation = r.history[0][0].split("Situation: ")[1].split("\n")[0]
                out.append(f"Turn {len(r.history) + 1} reply: I hear you, step {len(r.history) + 1} ({situation[:30]}).")
            elif "This is the listener's reply" in r.user:
                start = r.user.split("<<<REPLY>>>")[1].split("<<<END OF REPLY>>>")[0].strip()
                situation = r.user.split("Situation: ")[1].split("\n")[0]
                out.append(f'Improved response: "{start} I am here for you ({situation[:24]})."')
            else:  # the plain generation prompt (direct)
                situation = r.user.split("Context: ")[1].split("\n")[0]
                out.append(f"That sounds hard: {situation[:40]}")
        yield list(range(len(requests))), out

    def label_probs(self, requests):
        raise AssertionError("not used")

    def close(self):
        pass


register_backend("scripted-teacher")(lambda settings: ScriptedTeacher())


def scripted_teacher(root: Path) -> JudgeSettings:
    """Settings of the scripted teacher; its 'model' is a folder, so the client can fingerprint it offline."""
    folder = root / "scripted-teacher"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"scripted": true}\n')
    return JudgeSettings(model=str(folder), backend="scripted-teacher", cache_dir=str(root / "cache"))


def train_jsonl(path: Path, n: int, with_reply: bool) -> Path:
    """``n`` training dialogues (copies of the last bundled ones under other ids and text), optionally with replies."""
    dialogues = load_jsonl(bundled_dialogues_path())[-n:]
    rows = [{**d.model_dump(mode="json"), "id": f"train-{k}", "situation": d.situation + " (train copy)",
             **({"reply": f"Oh no. ({k})"} if with_reply else {})} for k, d in enumerate(dialogues)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def teacher(tmp_path: Path) -> JudgeSettings:
    return scripted_teacher(tmp_path)
