"""Step records (``step.json``): skip a step only when its inputs match; resume an interrupted one; else start clean.

A step's inputs are the sha256 of its data file, the identity of the model it starts from (a content hash of a
local folder or the resolved Hub commit; for DPO, the SFT step's record) and its config (LoRA, step settings,
batch plan with the recipe, precision). They are recorded with status ``running`` *before* training, and the step
is marked ``done`` — one atomic write — only after every output is saved. On a rerun:

- ``done``, same inputs, every output present: skipped, its record reused;
- same inputs but not done (a crash, or an output removed): resumed from its last complete checkpoint;
- other inputs, or outputs without a record: the outputs are removed and the step trains from scratch, with one
  line naming the input that changed.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.fingerprint import short_hash
from harness.core.io import write_json
from harness.train.hardware import barrier, is_main

SCHEMA_VERSION = 2
RECORD = "step.json"
#: Everything a step writes next to its record; removed when it starts from scratch.
OUTPUTS = ("checkpoints", "adapter", "merged", "log.jsonl", "samples.partial.jsonl")


@dataclass(frozen=True)
class Start:
    """How a step starts: reuse a finished record, or train (from a checkpoint, or from scratch)."""

    done: dict[str, Any] | None
    resume_from: str | None
    run_id: str
    inputs: dict[str, Any]


def begin_step(out: Path, step: str, inputs: dict[str, Any], outputs: Sequence[str]) -> Start:
    """Decide whether ``step`` in ``out`` is skipped, resumed or started clean; record it as running if it trains."""
    from harness.core.ui import console

    inputs = json.loads(json.dumps(inputs))  # the form it has once read back from step.json
    record = read_record(out)
    same = record is not None and record.get("inputs") == inputs
    if same and record is not None and record.get("status") == "done" and all((out / o).exists() for o in outputs):
        return Start(done=record, resume_from=None, run_id=str(record["run_id"]), inputs=inputs)
    barrier()  # every rank has read the record before rank 0 rewrites it
    if same and record is not None:
        run_id, resume = str(record["run_id"]), last_checkpoint(out)
        console.print(f"{step}: resuming an unfinished run with the same inputs "
                      f"({'from ' + Path(resume).name if resume else 'no checkpoint: from the start'})")
    else:
        run_id, resume = uuid.uuid4().hex, None
        why = _what_changed(record, inputs) if record is not None else (
            "outputs without a step record" if any((out / o).exists() for o in (*OUTPUTS, *outputs)) else None)
        if why:
            console.print(f"{step}: {why}: starting from scratch")
        if is_main():
            _remove_outputs(out, outputs)
    if is_main():
        write_json(out / RECORD, {"schema_version": SCHEMA_VERSION, "step": step, "status": "running",
                                  "run_id": run_id, "inputs": inputs, "started": _now()})
    barrier()
    return Start(done=None, resume_from=resume, run_id=run_id, inputs=inputs)


def finish_step(out: Path, step: str, start: Start, info: dict[str, Any]) -> dict[str, Any]:
    """Mark the step done (one atomic write, after every output is saved); its record."""
    record = {"schema_version": SCHEMA_VERSION, "step": step, "status": "done", "run_id": start.run_id,
              "inputs": start.inputs, **info, "finished": _now()}
    if is_main():
        write_json(out / RECORD, record)
    barrier()
    return record


def read_record(out: Path) -> dict[str, Any] | None:
    """The step's record, or None (missing or unreadable)."""
    try:
        record = json.loads((out / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def step_identity(record: dict[str, Any]) -> str:
    """A finished step's identity as the next step's base: its inputs and its run (a retrained step is new)."""
    return short_hash(json.dumps(record["inputs"], sort_keys=True), str(record["run_id"]))


def last_checkpoint(out: Path) -> str | None:
    """The newest complete checkpoint (its trainer state is written last), or None."""
    checkpoints = [p for p in (out / "checkpoints").glob("checkpoint-*")
                   if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
    checkpoints.sort(key=lambda p: int(p.name.split("-")[-1]))
    return str(checkpoints[-1]) if checkpoints else None


def _what_changed(record: dict[str, Any], inputs: dict[str, Any]) -> str:
    old = record.get("inputs")
    if not isinstance(old, dict):
        return "its record has no inputs (an older or unfinished run)"
    before, after = _flatten(old), _flatten(inputs)
    keys = [k for k in sorted(before.keys() | after.keys()) if before.get(k) != after.get(k)]
    shown = ", ".join(f"{k} {before.get(k)!r} → {after.get(k)!r}" for k in keys[:3])
    return f"inputs changed ({shown}{', …' if len(keys) > 3 else ''})"


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _remove_outputs(out: Path, outputs: Sequence[str]) -> None:
    for name in dict.fromkeys([*OUTPUTS, *(Path(o).parts[0] for o in outputs)]):
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
