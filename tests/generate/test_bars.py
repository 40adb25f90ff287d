"""Generation's progress bar says what it counts, in the harness's words, and lm-eval's own bars are put back."""

import asyncio

import pytest
from rich.progress import Progress

from harness.core.records import Decoding
from harness.data.selection import run_dialogues
from harness.generate.bars import _Tqdm, lm_eval_bars
from harness.generate.replies import ModelSpec, default_decoding, generate


def test_generation_bar_names_the_system_and_counts_replies(tiny_models, capsys):
    import lm_eval.api.task
    import lm_eval.models.huggingface
    import tqdm

    dialogues, _ = run_dialogues("bundled", 3)
    generate(ModelSpec(str(tiny_models["candidate"]), device="cpu"), dialogues, dataset="bundled",
             decoding=Decoding(max_gen_toks=2, until=default_decoding().until), system="base")
    err = capsys.readouterr().err
    assert "generating (candidate): base replies" in err and "3/3" in err, err
    assert "Running generate_until requests" not in err, err
    assert lm_eval.models.huggingface.tqdm is tqdm.tqdm and lm_eval.api.task.tqdm is tqdm.tqdm  # restored


def test_bars_are_restored_when_generation_fails():
    import lm_eval.models.huggingface
    import tqdm
    from lm_eval.models.huggingface import HFLM

    with pytest.raises(RuntimeError), lm_eval_bars(HFLM, "x"):
        assert lm_eval.models.huggingface.tqdm is not tqdm.tqdm
        raise RuntimeError("boom")
    assert lm_eval.models.huggingface.tqdm is tqdm.tqdm


def test_served_bar_gathers_in_order_and_counts_each_answer():
    async def answer(n: int) -> int:
        await asyncio.sleep(0.01 * (5 - n))  # later requests finish first
        return n

    with Progress() as progress:
        bars = _Tqdm(progress, "generating (served): candidate replies")
        assert asyncio.run(bars.gather(*(answer(n) for n in range(5)), desc="Requesting API")) == [0, 1, 2, 3, 4]
        (task,) = progress.tasks
        assert (task.description, task.completed, task.total) == ("generating (served): candidate replies", 5, 5)
        assert list(bars(range(3), total=3)) == [0, 1, 2]  # request building is passed through, not drawn
        assert len(progress.tasks) == 1
