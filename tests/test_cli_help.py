"""`graycat ... --help`: every command says what it does and where settings come from; every option its default
and, where a setting backs it, the setting's environment variable."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

from graycat.cli import _OVERRIDES, _SD_OVERRIDES, SETTINGS_HELP, _parser
from graycat.config import Settings


def commands(parser: argparse.ArgumentParser, path: str = "graycat") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, f"{path} {name}")


def test_every_command_has_a_description_and_points_to_the_settings() -> None:
    found = dict(commands(_parser()))
    assert {"graycat up", "graycat api", "graycat worker sd", "graycat token list"} <= found.keys()
    for name, parser in found.items():
        assert parser.description and len(parser.description) > 30, name
        assert parser.epilog == SETTINGS_HELP, name


def test_every_option_names_its_default_and_environment_variable() -> None:
    for name, parser in commands(_parser()):
        table = _SD_OVERRIDES if name == "graycat worker sd" else _OVERRIDES
        for action in parser._actions:
            if not action.option_strings or action.dest in ("help", "version") or action.required:
                continue
            assert action.help and "default" in action.help, f"{name} {action.option_strings[0]}"
            if action.dest in table:
                env = Settings.model_fields[table[action.dest]].validation_alias
                assert f"env {env}" in action.help, f"{name} {action.option_strings[0]}"


def test_up_help_reads_as_a_user_needs_it() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "graycat", "up", "--help"], capture_output=True, text=True, timeout=30
    ).stdout
    assert "Redis" in out and "GRAYCAT_PORT" in out and "default 8000" in out and "README.md" in out
