"""Checks that every task YAML loads through lm-eval (which skips a broken YAML silently)."""

from __future__ import annotations

import dataclasses

from harness.core.resources import tasks_dir

TASK_NAMES = ("empathy_gen", "empathy_winrate_vs_base", "empathy_winrate_vs_direct", "empathy_rubric")
GROUP_NAMES = ("empathy",)


def validate_tasks() -> list[str]:
    """Problems found (empty when all is well): missing tasks, unknown config keys, unresolvable functions."""
    from lm_eval.config.task import TaskConfig
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    problems: list[str] = []
    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False)
    index = manager.task_index
    for name in (*TASK_NAMES, *GROUP_NAMES):
        if name not in index:
            problems.append(f"{name}: not found in {tasks_dir()} (its YAML failed to load)")
    allowed = {f.name for f in dataclasses.fields(TaskConfig)}
    for name in TASK_NAMES:
        entry = index.get(name)
        if entry is None or entry.yaml_path is None:
            continue
        try:
            cfg = load_yaml(entry.yaml_path, resolve_func=True, recursive=True)
        except Exception as exc:  # an unresolvable !function or include: report, don't crash
            problems.append(f"{name}: {entry.yaml_path.name}: {type(exc).__name__}: {exc}")
            continue
        unknown = sorted(set(cfg) - allowed)
        if unknown:
            problems.append(f"{name}: unknown config keys {unknown}")
        for key in ("custom_dataset", "doc_to_text", "process_results"):
            if key in cfg and not callable(cfg[key]):
                problems.append(f"{name}: {key} is not a function")
        for flt in cfg.get("filter_list", []):
            for fn in flt.get("filter", []):
                if fn.get("function") == "custom" and not callable(fn.get("filter_fn")):
                    problems.append(f"{name}: filter {flt.get('name')} has no callable filter_fn")
    return problems
