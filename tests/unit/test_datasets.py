"""ShareGPT files to evalscope's line_by_line form."""

import json

import pytest

from fleetbench.agent.datasets import sharegpt_prompts, sharegpt_to_line_by_line


def test_first_human_turn_of_each_conversation():
    convs = [
        {"conversations": [{"from": "system", "value": "be brief"}, {"from": "human", "value": "hi"},
                           {"from": "human", "value": "second"}]},
        {"messages": [{"role": "user", "content": "openai-style"}]},
        {"conversations": [{"from": "gpt", "value": "no human"}]},
        {"conversations": [{"from": "human", "value": "   "}]},
        "not a conversation",
    ]
    assert list(sharegpt_prompts(convs)) == ["hi", "openai-style"]


def test_jsonl_input_and_an_empty_file_is_a_clear_error(tmp_path):
    src = tmp_path / "s.jsonl"
    src.write_text(json.dumps({"conversations": [{"from": "human", "value": "一"}]}) + "\n\n")
    out = tmp_path / "out.jsonl"
    assert sharegpt_to_line_by_line(src, out) == 1
    assert json.loads(out.read_text()) == [{"role": "user", "content": "一"}]
    src.write_text("[]")
    with pytest.raises(ValueError, match="holds no ShareGPT conversation"):
        sharegpt_to_line_by_line(src, out)
