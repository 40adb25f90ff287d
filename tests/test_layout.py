"""The layout shows the pipeline: one sub-package per stage, no import cycle, the lm-eval adapter a leaf."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = {"core", "data", "llm", "generate", "judge", "score", "evaluate", "train", "gate", "lmeval", "cli"}


def imports() -> dict[str, set[str]]:
    """Module → harness modules it imports (anywhere in the file, lazy imports included)."""
    out = {}
    for path in (ROOT / "harness").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness."):
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("harness.")}
        out[name] = deps
    return out


def package(module: str) -> str:
    return module.split(".")[1] if module.count(".") >= 1 else module


def test_one_package_per_stage():
    found = {p.name for p in (ROOT / "harness").iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert found == STAGES


def test_no_import_cycle_between_stages():
    graph: dict[str, set[str]] = {}
    for module, deps in imports().items():
        graph.setdefault(package(module), set()).update(package(d) for d in deps if package(d) != package(module))
    graph.pop("harness", None)

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    cycles = sorted(p for p in graph if p in reach(p))
    assert cycles == [], {p: sorted(graph[p]) for p in cycles}
    assert graph["core"] <= {"core"} or not graph["core"], graph["core"]  # the base depends on no stage


def test_the_lm_eval_adapter_is_a_leaf():
    users = sorted(m for m, deps in imports().items()
                   if any(d.startswith("harness.lmeval") for d in deps)
                   and not m.startswith(("harness.lmeval", "harness.cli")))
    assert users == []


def test_no_module_much_over_300_lines():
    files = [*(ROOT / "harness").rglob("*.py"), *(ROOT / "leaderboard").rglob("*.py")]
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in files}
    assert max(sizes.values()) <= 340, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
