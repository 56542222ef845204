"""Names for chat templates, as LLM for Unity v2 knows them (it builds prompts itself from the name that
`POST /template` gives; an unknown name breaks it)."""

from __future__ import annotations

# (marker found in the model's Jinja chat template, LLM for Unity template name), most specific first
_MARKERS: tuple[tuple[str, str], ...] = (
    ("<|im_start|>", "chatml"),
    ("<|start_header_id|>", "llama3 chat"),
    ("<start_of_turn>", "gemma"),
    ("<|assistant|>", "phi-3"),
    ("<|Assistant|>", "deepseek-v3"),
    ("[INST]", "mistral instruct"),
    ("### Instruction", "alpaca"),
    ("ASSISTANT:", "vicuna"),
)
DEFAULT = "chatml"


def template_name(chat_template: str | None) -> str:
    """The LLM for Unity name of a model's chat template; chatml (the safe default) when unrecognised."""
    for marker, name in _MARKERS:
        if chat_template and marker in chat_template:
            return name
    return DEFAULT
