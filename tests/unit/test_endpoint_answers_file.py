"""Canned answers of the simulated endpoint (`--answers`): the file format and how a reply becomes tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetbench.endpoint.cli import build_parser, config_from_args
from fleetbench.endpoint.config import CannedAnswer, load_answers
from fleetbench.endpoint.server import reply_pieces
from fleetbench.errors import ConfigError


def test_json_lines_and_json_list_give_the_same_answers_in_file_order(tmp_path: Path):
    items = [{"contains": "3 apples", "reply": "\\boxed{7}"}, {"contains": "eggs", "reply": "It is 30."}]
    lines, listed = tmp_path / "a.jsonl", tmp_path / "a.json"
    lines.write_text("\n".join(json.dumps(i) for i in items) + "\n\n")
    listed.write_text(json.dumps(items, indent=2))
    expected = (CannedAnswer("3 apples", "\\boxed{7}"), CannedAnswer("eggs", "It is 30."))
    assert load_answers(lines) == load_answers(listed) == expected
    config = config_from_args(build_parser().parse_args(["--answers", str(lines)]))
    assert config.answers == expected
    assert config_from_args(build_parser().parse_args([])).answers == ()


@pytest.mark.parametrize("text, message", [
    ('{"contains": "a", "reply": "b"}\n{"contains": "a"}\n', "line 2: expected an object with keys contains and reply"),
    ('[{"contains": "", "reply": "b"}]', "item 1: contains and reply must be non-empty strings"),
    ('{"contains": "a", "reply": "  "}', "line 1: contains and reply must be non-empty strings"),
    ('{"contains": "a", "reply": "b", "x": 1}', "line 1: expected an object"),
    ("{oops", "is not JSON or JSON lines"),
])
def test_bad_answers_files_are_refused_with_the_line(tmp_path: Path, text: str, message: str):
    path = tmp_path / "answers.jsonl"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_answers(path)


def test_missing_answers_file(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"answers file .*nope\.json"):
        load_answers(tmp_path / "nope.json")


def test_reply_tokens_join_back_to_the_reply_one_per_word():
    reply = "  So 3 + 4 = 7.\nThe answer is \\boxed{7}.  "
    pieces = reply_pieces(reply)
    assert "".join(pieces) == reply.strip()
    assert len(pieces) == len(reply.split()) == 10
    assert pieces[0] == "So" and pieces[5] == " 7." and pieces[6] == "\nThe"
