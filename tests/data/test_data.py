import collections
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.data.sources import (
    EMOTION_SENTIMENT,
    DatasetError,
    DatasetSpec,
    dataset_hash,
    interleave_by_emotion,
    load_dialogues,
    load_jsonl,
    load_welivita,
)

SOURCES = ("human", "chatgpt_empathy", "llama_empathy", "gemini_empathy", "mixtral_empathy")


def test_bundled_set_is_large_varied_and_unique():
    dialogues = load_dialogues("bundled")
    assert len(dialogues) >= 200
    counts = collections.Counter(d.emotion for d in dialogues)
    assert set(counts) == set(EMOTION_SENTIMENT) and len(counts) == 32
    assert min(counts.values()) >= 5
    assert len({d.id for d in dialogues}) == len(dialogues)
    assert all(d.sentiment == EMOTION_SENTIMENT[d.emotion] for d in dialogues)
    lengths = [len(d.utterance.split()) for d in dialogues]
    assert min(lengths) <= 12 and max(lengths) >= 30  # varied in length
    assert len({d.utterance for d in dialogues}) == len(dialogues)


def test_interleaving_makes_first_n_varied_and_is_stable():
    d = interleave_by_emotion(load_dialogues("bundled"))
    assert len({x.emotion for x in d[:32]}) == 32
    assert [x.id for x in d] == [x.id for x in interleave_by_emotion(list(reversed(d)))]


def test_dataset_hash_depends_on_content_not_order():
    d = load_dialogues("bundled")
    assert dataset_hash(d) == dataset_hash(list(reversed(d)))
    changed = [d[0].model_copy(update={"utterance": "something else"}), *d[1:]]
    assert dataset_hash(changed) != dataset_hash(d)


def test_malformed_row_names_file_and_line(tmp_path: Path):
    good = {"id": "x1", "emotion": "sad", "sentiment": "negative", "situation": "s", "utterance": "u"}
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps(good) + "\n" + json.dumps({"id": "x2", "emotion": "sad"}) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"d\.jsonl:2: malformed dialogue row"):
        load_jsonl(f)
    f.write_text(json.dumps(good) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"d\.jsonl:2"):
        load_jsonl(f)
    f.write_text(json.dumps({**good, "emotion": "happyish"}) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"d\.jsonl:1: unknown emotion 'happyish'"):
        load_jsonl(f)
    f.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="duplicate dialogue id 'x1'"):
        load_jsonl(f)


def test_non_utf8_file_gets_clear_error(tmp_path: Path):
    f = tmp_path / "latin.jsonl"
    f.write_bytes('{"id": "x", "situation": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(DatasetError, match="not valid UTF-8.*iconv"):
        load_jsonl(f)


def write_welivita_csv(path: Path, rows: list[dict[str, str]]) -> None:
    fields = ["dialog_id", "emotion", "sentiment", "plutchik", "situation", "speaker_uttr"]
    fields += [f"response_{s}" for s in SOURCES] + [f"rating_{s}" for s in SOURCES]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def welivita_row(i: int, ratings: list[int]) -> dict[str, str]:
    row = {"dialog_id": f"dlg-{i}", "emotion": "sad", "sentiment": "negative", "plutchik": "sadness",
           "situation": f"My plant {i} died.", "speaker_uttr": f"My plant {i} died and I am sad."}
    for s, r in zip(SOURCES, ratings, strict=True):
        row[f"response_{s}"] = f"{s} reply {i}, I am sorry."
        row[f"rating_{s}"] = str(r)
    return row


def test_welivita_paper_split(tmp_path: Path):
    f = tmp_path / "ratings.csv"
    # dialogue 0: one '3' → test; 1: two '3' → train; 2: no '3' → test
    write_welivita_csv(f, [welivita_row(0, [3, 2, 1, 2, 2]), welivita_row(1, [3, 3, 1, 2, 2]), welivita_row(2, [1, 2, 1, 2, 2])])
    assert [d.id for d in load_welivita(f, split="paper_test")] == ["dlg-0", "dlg-2"]
    assert [d.id for d in load_welivita(f, split="paper_train")] == ["dlg-1"]
    assert len(load_dialogues(f"welivita:{f}:all")) == 3
    assert DatasetSpec.parse(f"welivita:{f}:paper_test").split == "paper_test"


def test_welivita_missing_columns(tmp_path: Path):
    f = tmp_path / "bad.csv"
    f.write_text("dialog_id,emotion\n1,sad\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="missing columns"):
        load_welivita(f)


def test_dataset_spec_forms():
    assert DatasetSpec.parse("bundled").kind == "bundled"
    ed = DatasetSpec.parse("ed:valid@abc123")
    assert (ed.kind, ed.split, ed.revision) == ("ed", "valid", "abc123")
    assert DatasetSpec.parse("ed").revision == "e85c6e0"
    with pytest.raises(DatasetError, match="unknown EmpatheticDialogues split 'dev'"):
        DatasetSpec.parse("ed:dev")
    with pytest.raises(DatasetError, match="unknown dataset"):
        DatasetSpec.parse("something")


def test_ed_rows_are_converted_one_per_conversation():
    from harness.data.sources import _ed_rows_to_dialogues

    rows = [{"conv_id": "c1", "situation": "I lost my keys", "emotion": "annoyed",
             "conversations": [{"role": "user", "content": "Lost my keys again!"},
                               {"role": "assistant", "content": "Oh no"}]}]
    (d,) = list(_ed_rows_to_dialogues(rows, split="test"))
    assert (d.id, d.utterance, d.sentiment, d.source) == ("c1", "Lost my keys again!", "negative", "empathetic_dialogues")


def test_ed_offline_gives_clear_error():
    code = "from harness.data.sources import load_dialogues\nload_dialogues('ed:test')"
    env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": "/tmp/nohome"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0
    assert "could not load Estwld/empathetic_dialogues_llm@e85c6e0" in proc.stderr
    assert "--dataset bundled" in proc.stderr
