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
# llama.cpp's built-in template names (a --chat-template override) -> LLM for Unity name
_BUILTIN = {
    "chatml": "chatml",
    "llama3": "llama3 chat",
    "gemma": "gemma",
    "phi3": "phi-3",
    "phi4": "phi-3",
    "deepseek3": "deepseek-v3",
    "mistral-v1": "mistral instruct",
    "mistral-v3": "mistral instruct",
    "mistral-v7": "mistral instruct",
    "llama2": "mistral instruct",
    "vicuna": "vicuna",
    "zephyr": "zephyr",
}


def template_name(chat_template: str | None) -> str:
    """The LLM for Unity name of a model's chat template (its Jinja text or a llama.cpp built-in name);
    chatml (the safe default) when unrecognised."""
    if chat_template in _BUILTIN:
        return _BUILTIN[chat_template]
    for marker, name in _MARKERS:
        if chat_template and marker in chat_template:
            return name
    return DEFAULT
