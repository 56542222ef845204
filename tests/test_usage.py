"""What a job used, counted by the worker from the engine's answer and from the stream chunks as they pass
(chunk shapes as llama.cpp and the SD engine send them), and how many prompts a request holds."""

from __future__ import annotations

import orjson

from graycat.api.dialects import prompt_count
from graycat.jobs import Job, JobState, Usage
from graycat.workers.usage import UNKNOWN, Meter


def meter(endpoint: str = "/completion", body: dict[str, object] | None = None, kind: str = "llm") -> Meter:
    return Meter(Job(kind=kind, model="m", endpoint=endpoint, body=orjson.dumps(body or {"prompt": "x"}), stream=True))


def native(index: int, made: int) -> bytes:
    return orjson.dumps(
        {"index": index, "content": "x", "tokens": [1], "stop": False, "tokens_predicted": made, "tokens_evaluated": 2}
    )


def test_a_stream_of_several_prompts_stopped_midway_counts_each_prompt() -> None:
    m = meter()
    for made in (1, 2, 3):
        m.feed(native(0, made))
    m.feed(native(1, 1))
    m.feed(
        orjson.dumps({"index": 1, "stop": True, "tokens_predicted": 2, "timings": {"prompt_n": 2, "predicted_n": 2}})
    )
    assert m.usage(499, b"", JobState.CANCELLED, True) == Usage(4, 5)


def test_an_openai_stream_counts_its_chunks_until_the_final_figures() -> None:
    m = meter("/v1/chat/completions")
    m.feed(orjson.dumps({"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]}))
    for _ in range(3):
        m.feed(orjson.dumps({"choices": [{"index": 0, "delta": {"content": "x"}}]}))
    assert m.usage(499, b"", JobState.CANCELLED, True) == Usage(0, 3)
    m.feed(
        orjson.dumps(
            {
                "choices": [{"index": 0, "finish_reason": "length", "delta": {}}],
                "timings": {"prompt_n": 7, "cache_n": 1, "predicted_n": 4},
            }
        )
    )
    assert m.usage(200, b"", JobState.COMPLETED, True) == Usage(8, 4)


def test_answers_of_several_prompts_count_them_all() -> None:
    results = [{"index": i, "tokens_predicted": 5, "tokens_evaluated": 1} for i in range(3)]
    assert meter().usage(200, orjson.dumps(results), JobState.COMPLETED, True) == Usage(3, 15)
    # llama.cpp's OpenAI answer to several prompts reports one prompt's figures
    oai = {
        "choices": [
            {"index": i, "text": "x", "finish_reason": reason} for i, reason in enumerate(["length", "length", "stop"])
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 3},
    }
    capped = meter("/v1/completions", {"prompt": ["a", "b", "c"], "n_predict": 5})
    assert capped.usage(200, orjson.dumps(oai), JobState.COMPLETED, True) == Usage(1, 5 + 5 + 3)


def test_a_whole_answer_stopped_midway_is_unknown_and_counts_its_reservation() -> None:
    assert meter().usage(499, b"", JobState.CANCELLED, True).completion_tokens == UNKNOWN
    assert meter().usage(499, b"", JobState.CANCELLED, False) == Usage()  # never reached the engine
    assert meter("/tokenize").usage(499, b"", JobState.CANCELLED, True) == Usage()  # generates nothing


def test_images_count_what_was_made_whether_sent_or_not() -> None:
    info = orjson.dumps({"all_seeds": [1, 2, 3]}).decode()
    answer = orjson.dumps({"images": [], "info": info})
    assert meter("/txt2img", kind="sd").usage(200, answer, JobState.COMPLETED, True) == Usage(images=3)
    interrupted = meter("/txt2img", {"batch_size": 2, "n_iter": 3}, kind="sd")
    for job_no, step in ((0, 1), (0, 2), (1, 1)):
        interrupted.feed(orjson.dumps({"job_no": job_no, "job_count": 3, "step": step, "steps": 2}))
    assert interrupted.usage(499, b"", JobState.CANCELLED, True) == Usage(images=2)


def test_prompts_are_counted_as_llama_cpp_reads_them() -> None:
    assert [
        prompt_count(p)
        for p in ("text", [1, 2, 3], ["a", 1], ["a"], ["a", "b"], [[1], [2], [3]], [{"prompt_string": "a"}, "b"])
    ] == [1, 1, 1, 1, 2, 3, 2]


def test_responses_answers_and_streams_are_counted() -> None:
    answer = orjson.dumps({"object": "response", "usage": {"input_tokens": 9, "output_tokens": 4}})
    assert meter("/v1/responses").usage(200, answer, JobState.COMPLETED, True) == Usage(9, 4)
    r = meter("/v1/responses")
    for _ in range(3):
        r.feed(orjson.dumps({"type": "response.output_text.delta", "delta": "x"}))
    assert r.usage(499, b"", JobState.CANCELLED, True) == Usage(0, 3)
    r.feed(
        orjson.dumps(
            {
                "type": "response.completed",
                "response": {"usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}},
            }
        )
    )
    assert r.usage(200, b"", JobState.COMPLETED, True) == Usage(5, 2)
