"""The simulated endpoint's canned answers over HTTP: a request whose last user message contains a
configured substring gets that reply (streamed or not, chat or completions); others get generated words."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from fleetbench.endpoint.config import CannedAnswer, EndpointConfig
from fleetbench.endpoint.server import RunningEndpoint
from fleetbench.endpoint.testing import EndpointThread

pytestmark = pytest.mark.integration
REPLY = "Tom has 3 + 4 = 7 apples.\nThe answer is \\boxed{7}."


@pytest.fixture(scope="module")
def ep() -> Iterator[RunningEndpoint]:
    answers = (CannedAnswer("3 apples", REPLY), CannedAnswer("apples", "second rule"))
    with EndpointThread(EndpointConfig(ttft_s=0.001, tpot_s=0.001, default_output_tokens=5,
                                       answers=answers)) as endpoint:
        yield endpoint


def post(ep: RunningEndpoint, path: str, body: dict[str, Any]) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", ep.port, timeout=30)
    try:
        conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200
        return resp.read()
    finally:
        conn.close()


def streamed_text(raw: bytes, chat: bool) -> tuple[str, dict[str, Any]]:
    chunks = [json.loads(b.removeprefix(b"data: ")) for b in raw.strip().split(b"\n\n")[:-1]]
    key = "delta" if chat else None
    text = "".join(c["choices"][0][key]["content"] if chat else c["choices"][0]["text"]
                   for c in chunks if c["choices"])
    return text, chunks[-1]["usage"]


def chat_body(question: str, **extra: Any) -> dict[str, Any]:
    # the canned answer matches the LAST user message: earlier turns mentioning "3 apples" do not count
    return {"messages": [{"role": "user", "content": "I had 3 apples yesterday"},
                         {"role": "assistant", "content": "ok"}, {"role": "user", "content": question}], **extra}


def test_chat_non_streamed_and_streamed_get_the_reply_exactly(ep: RunningEndpoint):
    question = "Tom has 3 apples and buys 4 more. How many?"
    payload = json.loads(post(ep, "/v1/chat/completions", chat_body(question)))
    assert payload["choices"][0]["message"]["content"] == REPLY
    assert payload["usage"]["completion_tokens"] == len(REPLY.split())
    text, usage = streamed_text(post(ep, "/v1/chat/completions", chat_body(question, stream=True)), chat=True)
    assert text == REPLY and usage["completion_tokens"] == len(REPLY.split())


def test_first_matching_rule_wins_and_others_get_words(ep: RunningEndpoint):
    assert json.loads(post(ep, "/v1/chat/completions", chat_body("Green apples?")))["choices"][0]["message"][
        "content"] == "second rule"
    other = json.loads(post(ep, "/v1/chat/completions", chat_body("How many pears?")))
    assert other["choices"][0]["message"]["content"] not in (REPLY, "second rule")
    assert other["usage"]["completion_tokens"] == 5  # the usual generated length
    records = ep.requests()[-2:]
    assert [r.canned for r in records] == [True, False]


def test_completions_and_max_tokens_cut_the_reply(ep: RunningEndpoint):
    payload = json.loads(post(ep, "/v1/completions", {"prompt": "Q: 3 apples and 4 more?", "max_tokens": 3}))
    assert payload["choices"][0]["text"] == "Tom has 3"
    assert payload["usage"]["completion_tokens"] == 3
    text, usage = streamed_text(post(ep, "/v1/completions", {"prompt": "3 apples", "stream": True,
                                                             "ignore_eos": True, "max_tokens": 500}), chat=False)
    assert text == REPLY and usage["completion_tokens"] == len(REPLY.split())  # ignore_eos does not pad it
