"""A1111's infotext: the text stored in a PNG's `parameters` chunk, written and read back."""

from __future__ import annotations

import re
from typing import Any

_PAIR = re.compile(r'\s*([\w ]+):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_SIZE = re.compile(r"^(\d+)x(\d+)$")


def _value(value: Any) -> str:
    text = str(value)
    return (
        f'"{text.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        if any(c in text for c in ',:"\n')
        else text
    )


def build(prompt: str, negative_prompt: str, settings: dict[str, Any]) -> str:
    """`<prompt>\\nNegative prompt: <negative>\\nSteps: 20, Sampler: Euler a, ...` (None values left out)."""
    line = ", ".join(f"{key}: {_value(value)}" for key, value in settings.items() if value is not None)
    negative = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative}\n{line}"


def parse(text: str) -> dict[str, Any]:
    """The fields of an infotext as A1111's png-info gives them: `Prompt`, `Negative prompt`, each setting
    (numbers as numbers), and `Size-1` / `Size-2` for `Size`."""
    lines = text.strip().split("\n")
    settings_line = lines[-1] if len(lines) > 1 and _PAIR.match(lines[-1]) and ": " in lines[-1] else ""
    if settings_line:
        lines = lines[:-1]
    prompt: list[str] = []
    negative: list[str] = []
    in_negative = False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line.removeprefix("Negative prompt:").strip()
        (negative if in_negative else prompt).append(line)
    result: dict[str, Any] = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    for key, raw in _PAIR.findall(settings_line):
        value = raw.strip()
        if value.startswith('"') and value.endswith('"') and len(value) > 1:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        size = _SIZE.match(value)
        if size:
            result[f"{key.strip()}-1"], result[f"{key.strip()}-2"] = int(size[1]), int(size[2])
        result[key.strip()] = _number(value)
    return result


def _number(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value
