"""Eval job specs: validated field by field, every error naming its field; the agent needs no evalscope."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fleetbench.agent.jobspec import spec_total
from fleetbench.errors import ConfigError
from fleetbench.jobs_schema import KNOWN_DATASETS, EvalSpec, GenerationConfig, JobKind, parse_spec

KIND_EVAL = JobKind.EVAL


def parse_eval_spec(raw: Any) -> EvalSpec:
    return EvalSpec.from_wire(raw)


def good(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "url": "http://127.0.0.1:8000/v1", "model": "DeepSeek-V3.2",
        "datasets": ["aime25", "gsm8k"],
        "dataset_args": {"aime25": {"local_path": "/data/aime25"},
                         "gsm8k": {"local_path": "/data/gsm8k", "subset_list": ["main"], "few_shot_num": 0}},
    }
    spec.update(changes)
    return spec


def test_a_full_spec_round_trips_through_json():
    spec = parse_eval_spec(good(api_key="sk", eval_batch_size=16, limit=10, repeats=2, timeout_s=6000, stream=True,
                                seed=7, ignore_errors=True,
                                generation_config={"temperature": 0.6, "max_tokens": 56000, "top_p": 0.95,
                                                   "extra_body": {"chat_template_kwargs": {"thinking": True}}}))
    assert spec.datasets == ("aime25", "gsm8k")
    assert spec.local_paths() == {"aime25": "/data/aime25", "gsm8k": "/data/gsm8k"}
    assert spec.total_hint == 10 * 2 * 2
    again = parse_eval_spec(spec.model_dump_json())
    assert again == spec and parse_spec(KIND_EVAL, spec.model_dump_json()) == spec
    wire = json.loads(spec.model_dump_json())
    assert wire["datasets"] == ["aime25", "gsm8k"]
    # what evalscope gets: the keys the spec gave, none added as null
    assert wire["dataset_args"] == {"aime25": {"local_path": "/data/aime25"},
                                    "gsm8k": {"local_path": "/data/gsm8k", "subset_list": ["main"], "few_shot_num": 0}}
    assert wire["generation_config"] == {"temperature": 0.6, "max_tokens": 56000, "top_p": 0.95,
                                         "extra_body": {"chat_template_kwargs": {"thinking": True}}}


def test_defaults_and_the_agents_kind_dispatch():
    spec = parse_spec(KIND_EVAL, json.dumps(good()))
    assert isinstance(spec, EvalSpec)
    assert (spec.eval_batch_size, spec.limit, spec.stream, spec.api_key, spec.generation_config) == (
        1, None, False, "", GenerationConfig())
    assert spec.generation_config.as_dict() == {}
    assert spec.total_hint == 0 and spec_total(spec) == 0  # unknown until evalscope has loaded the datasets
    assert spec_total(parse_eval_spec(good(limit=3))) == 6


@pytest.mark.parametrize("url, base", [
    ("http://h:8000/v1", "http://h:8000/v1"),
    ("http://h:8000/v1/", "http://h:8000/v1"),
    ("https://h/v1/chat/completions", "https://h/v1"),
    ("http://h:8000/v1/completions", "http://h:8000/v1"),
])
def test_url_is_the_openai_base_url(url: str, base: str):
    assert parse_eval_spec(good(url=url)).url == base


@pytest.mark.parametrize("changes, message", [
    ({"bogus": 1}, "unknown eval spec field(s): bogus"),
    ({"url": "ftp://h/v1"}, "url must be an http:// or https:// URL"),
    ({"url": "h:8000"}, "url must be an http:// or https:// URL"),
    ({"model": ""}, "model must be a non-empty string"),
    ({"datasets": []}, "datasets must be a non-empty list"),
    ({"datasets": "gsm8k"}, "datasets must be a non-empty list"),
    ({"datasets": ["gsm8k", "gsm8k"], "dataset_args": {"gsm8k": {"local_path": "/d"}}}, "twice"),
    ({"datasets": ["math500"], "dataset_args": {"math500": {"local_path": "/d"}}},
     "datasets[0] 'math500' is spelled 'math_500' in evalscope"),
    ({"datasets": ["../etc"], "dataset_args": {}}, "datasets[0] '../etc' is not an evalscope benchmark name"),
    ({"datasets": [3]}, "datasets[0] must be a non-empty string"),
    ({"dataset_args": {"aime25": {"local_path": "/a"}}}, "dataset_args.gsm8k.local_path is required"),
    ({"dataset_args": {"aime25": {}, "gsm8k": {"local_path": "/g"}}}, "dataset_args.aime25.local_path is required"),
    ({"dataset_args": {"aime25": {"local_path": "rel/aime"}, "gsm8k": {"local_path": "/g"}}},
     "dataset_args.aime25.local_path must be an absolute path"),
    ({"dataset_args": {"aime25": {"local_pth": "/a"}, "gsm8k": {"local_path": "/g"}}},
     "unknown field(s) in dataset_args.aime25: local_pth (known: aggregation, default_subset"),
    ({"dataset_args": {"aime25": {"local_path": "/a", "dataset_id": "AI-ModelScope/aime"},
                       "gsm8k": {"local_path": "/g"}}}, "unknown field(s) in dataset_args.aime25: dataset_id"),
    ({"dataset_args": {"aime25": {"local_path": "/a", "few_shot_num": -1}, "gsm8k": {"local_path": "/g"}}},
     "dataset_args.aime25.few_shot_num must be ≥ 0"),
    ({"dataset_args": {"aime25": {"local_path": "/a", "few_shot_num": True}, "gsm8k": {"local_path": "/g"}}},
     "dataset_args.aime25.few_shot_num has the wrong type"),
    ({"dataset_args": {"aime25": {"local_path": "/a", "subset_list": []}, "gsm8k": {"local_path": "/g"}}},
     "dataset_args.aime25.subset_list must be a non-empty list"),
    ({"dataset_args": {"aime25": {"local_path": "/a"}, "gsm8k": {"local_path": "/g"}, "mmlu": {}}},
     "dataset_args names dataset(s) not in datasets: mmlu"),
    ({"dataset_args": ["/a"]}, "dataset_args must be a mapping"),
    ({"eval_batch_size": 0}, "eval_batch_size must be a positive integer"),
    ({"limit": 0}, "limit must be a positive integer"),
    ({"limit": 0.5}, "limit must be a positive integer"),
    ({"repeats": -2}, "repeats must be a positive integer"),
    ({"timeout_s": "60"}, "timeout_s must be a positive integer"),
    ({"stream": "yes"}, "stream must be true or false"),
    ({"seed": 1.5}, "seed must be an integer"),
    ({"generation_config": {"temperature": -1}}, "generation_config.temperature must be a number ≥ 0"),
    ({"generation_config": {"top_p": 0}}, "generation_config.top_p must be a number > 0"),
    ({"generation_config": {"max_tokens": 0}}, "generation_config.max_tokens must be a positive integer"),
    ({"generation_config": {"extra_body": "x"}}, "generation_config.extra_body must be a mapping"),
    ({"generation_config": {"stream": True}}, "generation_config.stream is set through the spec's stream field"),
    ({"generation_config": {"max_new_tokens": 5}}, "unknown field(s) in generation_config: max_new_tokens"),
    ({"generation_config": [1]}, "generation_config must be a mapping"),
])
def test_bad_specs_are_refused_naming_the_field(changes: dict[str, Any], message: str):
    with pytest.raises(ConfigError) as err:
        parse_eval_spec(good(**changes))
    assert message in str(err.value)


@pytest.mark.parametrize("missing", ["url", "model", "datasets", "dataset_args"])
def test_required_fields(missing: str):
    spec = good()
    del spec[missing]
    with pytest.raises(ConfigError, match=f"eval spec field {missing} is required"):
        parse_eval_spec(spec)


def test_not_json_or_not_an_object():
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_eval_spec("{")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        parse_eval_spec("[1]")


def test_names_outside_the_static_list_pass_to_evalscope_which_knows_its_own():
    spec = parse_eval_spec(good(datasets=["bfcl_v3"], dataset_args={"bfcl_v3": {"local_path": "/d"}}))
    assert spec.datasets == ("bfcl_v3",) and "bfcl_v3" not in KNOWN_DATASETS
    assert {"aime24", "aime25", "gsm8k", "gpqa_diamond", "math_500", "mmlu", "ceval"} <= set(KNOWN_DATASETS)
