"""Every command describes itself, and every option with a default names it in --help."""

from __future__ import annotations

import argparse

from harness.cli.main import build_parser


def commands(parser: argparse.ArgumentParser, prefix: str = "empathy"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", sub
                yield from commands(sub, f"{prefix} {name}")


def test_every_command_has_a_description_and_shows_defaults():
    found = list(commands(build_parser()))
    assert len(found) >= 20
    for name, parser in found:
        assert parser.description, name
        text = parser.format_help().split("options:", 1)[-1]
        for action in parser._actions:
            if action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS) \
                    and action.help != argparse.SUPPRESS:
                flag = action.option_strings[0]
                block = text.split(f"\n  {flag}", 1)[1]
                block = block.split("\n  -", 1)[0]  # up to the next option
                assert "default" in block, f"{name} {flag}"


def test_cache_dir_help_names_the_real_default(monkeypatch, tmp_path):
    monkeypatch.setenv("EMPATHY_HARNESS_CACHE", str(tmp_path / "here"))
    text = dict(commands(build_parser()))["empathy eval"].format_help()
    assert str(tmp_path / "here") in " ".join(text.split()).replace("- ", "-")
