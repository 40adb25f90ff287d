"""tasks/ and prompts/ ship inside the wheel and are found through the installed package."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_tasks_prompts_and_dialogues(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, timeout=300)
    (wheel,) = tmp_path.glob("empathy_harness-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("harness/_data/tasks/empathy.yaml", "harness/_data/tasks/empathy_winrate_vs_base.yaml",
              "harness/_data/prompts/generation/default.yaml", "harness/_data/prompts/judge/pairwise.yaml",
              "harness/_data/prompts/judge/rubric.yaml", "harness/data/dialogues.jsonl", "leaderboard/__init__.py"):
        assert f in names, f
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, timeout=300)
    code = ("from harness.core.resources import tasks_dir, prompts_dir; from harness.data.sources import load_dialogues; "
            "print(tasks_dir()); print(prompts_dir()); print(len(load_dialogues('bundled')))")
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         check=True, timeout=120).stdout.split()
    assert out[0] == str(target / "harness" / "_data" / "tasks")
    assert out[1] == str(target / "harness" / "_data" / "prompts")
    assert int(out[2]) >= 200


def test_requires_python_is_the_version_ci_runs():
    """pyproject.toml claims exactly the Python CI checks (.ci/run) and the README names — the one this runs on."""
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11,<3.12"
    assert "Programming Language :: Python :: 3.11" in project["classifiers"]
    assert not [c for c in project["classifiers"] if re.fullmatch(r"Programming Language :: Python :: 3\.(?!11$)\d+", c)]
    assert "sys.version_info[:2] == (3, 11)" in (ROOT / ".ci" / "run").read_text()
    assert "**Python 3.11** — the version CI runs" in (ROOT / "README.md").read_text()
    assert sys.version_info[:2] == (3, 11)
