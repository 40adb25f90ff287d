"""``empathy judge train``: an empathy reward model from human ratings (for ``--judge-mode reward``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from harness.cli.options import Handler, cache_dir, writable_folder
from harness.core.errors import HarnessError

if TYPE_CHECKING:
    from harness.cli.options import Subparsers


def add_commands(sub: Subparsers) -> dict[str, Handler]:
    """Add ``judge`` (action ``train``); returns its handler."""
    judge = sub.add_parser("judge", help="reward-model judges: train one from human ratings (train)")
    actions = judge.add_subparsers(dest="judge_command", metavar="ACTION")
    tr = actions.add_parser(
        "train", help="train an empathy reward model on rated replies; report its held-out validity",
        description="Pairs of differently rated replies to the same dialogue train a reward model (one output r; "
                    "P(a better) = σ(r_a − r_b)) that --judge-mode reward loads. Evaluation dialogues are refused; "
                    "a seeded share of the dialogues is held out, and the model's agreement with the better-rated "
                    "reply there is reported beside 'the longer reply wins' and 'the source rated higher on average "
                    "wins'. Writes OUTPUT (model, tokenizer, README.md model card, training.json), atomically.")
    tr.add_argument("--ratings", required=True, metavar="FILE",
                    help="a Welivita & Pu ratings CSV, or JSONL rows {dialogue | situation + utterance, chosen, "
                         "rejected[, margin]} or {dialogue | situation + utterance, reply, rating}")
    tr.add_argument("--output", required=True, help="output folder (new, empty, or an earlier reward model)")
    tr.add_argument("--recipe", default="fast",
                    help="fast: MiniLM's top layer, pooler and classifier on a CPU (minutes); lora: trl's "
                         "RewardTrainer with LoRA on any backbone, merged (for a GPU)")
    tr.add_argument("--backbone", default=None, metavar="DIR",
                    help="model folder to start from (default: all-MiniLM-L6-v2, as 'empathy models fetch minilm')")
    tr.add_argument("--val-fraction", type=float, default=0.25, help="share of dialogues held out for the figures")
    tr.add_argument("--seed", type=int, default=0, help="split, training and bootstrap seed")
    tr.add_argument("--epochs", type=int, default=None, help="passes over the training dialogues (default: 3 fast, "
                                                             "1 lora)")
    tr.add_argument("--lr", type=float, default=None, help="learning rate (default: 1e-4 for both recipes)")
    tr.add_argument("--batch-size", type=int, default=None,
                    help="dialogues per step (fast; default 16) or pairs per step (lora; default 8)")
    tr.add_argument("--max-length", type=int, default=None, help="tokens of (context, reply) at most (default: "
                                                                 "256 fast, 512 lora); the judge truncates there too")
    tr.add_argument("--train-layers", type=int, default=None,
                    help="fast: encoder layers trained on top of the frozen ones (default 1; 0 = pooler and "
                         "classifier only)")
    tr.add_argument("--lora-r", type=int, default=None, help="lora: LoRA rank (default 16)")
    tr.add_argument("--experts", default=None, metavar="DIR",
                    help="a Kumar et al. 2025 folder: the trained model rates its 50 conversations and the expert "
                         "table (kappa vs each expert and their median, beside the paper's rows) joins the card")
    tr.add_argument("--eval-dataset", default="bundled", help="the evaluation set whose dialogues are refused")
    tr.add_argument("--eval-limit", type=int, default=None, help="only the first N evaluation dialogues are refused")
    tr.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda")
    tr.add_argument("--cache-dir", default=None, help="cache folder (default $EMPATHY_HARNESS_CACHE or ~/.cache)")
    return {"judge": cmd_judge}


def cmd_judge(args: argparse.Namespace) -> int:
    """Run ``empathy judge train``: progress on stderr, the held-out figures on stdout."""
    from rich.table import Table

    from harness.core.ui import console, report_console
    from harness.train.judge_card import figure_rows
    from harness.train.judge_train import JudgeTrainConfig, check_output, run_judge_train, settings

    if args.judge_command != "train":
        raise HarnessError("usage: empathy judge train --ratings FILE --output DIR")
    output = writable_folder("--output", args.output)
    check_output(output)
    batch = "batch_dialogues" if args.recipe == "fast" else "batch_size"
    overrides = {"epochs": args.epochs, "learning_rate": args.lr, batch: args.batch_size, "max_length": args.max_length,
                 "train_layers": args.train_layers, "r": args.lora_r, "seed": args.seed}
    settings(args.recipe, overrides)  # an unknown recipe or a setting it lacks: before any work
    record = run_judge_train(JudgeTrainConfig(
        ratings=Path(args.ratings), output=output, recipe=args.recipe,
        backbone=Path(args.backbone).expanduser() if args.backbone else None, val_fraction=args.val_fraction,
        seed=args.seed, eval_dataset=args.eval_dataset, eval_limit=args.eval_limit, device=args.device,
        cache_dir=cache_dir(args), experts=Path(args.experts).expanduser() if args.experts else None,
        overrides=overrides))
    table = Table(title=f"reward model — held-out validity ({record['split']['validation']['dialogues']} dialogues)",
                  title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for what, value in figure_rows(record["validity"]):
        table.add_row(what, value)
    report_console(pipe_width=150).print(table)
    if "experts" in record:
        from harness.score.experts import print_experts

        print_experts(record["experts"], report_console(pipe_width=150))
    console.print(f"reward model written to {output} (model card: README.md; figures: training.json) in "
                  f"{record['seconds']['total']} s", soft_wrap=True)
    return 0
