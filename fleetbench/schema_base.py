"""What the plan and fleet file schemas share (fleetbench.plan_schema, fleetbench.fleet_schema).

Each file format is declared once, as strict pydantic models: they validate the YAML and
are the source of the JSON Schema that editors use (`ctl plan schema`, `ctl fleet schema`).
Every problem reads as one sentence for the operator: the models attach their own wording
(`says`, `problem`), unknown keys name the allowed ones and a close spelling, and
`problems()` turns a ValidationError into (location, sentence) pairs that
controller/yamlfile.py prefixes with `file:line: field`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PrivateAttr,
    ValidationError,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

PROBLEM = "fleetbench"  # the error type of every problem worded here
Loc = tuple[str | int, ...]


def problem(message: str, *at: str | int) -> PydanticCustomError:
    """A problem in our words; `at` is its place below the value being validated (a key, an index)."""
    return PydanticCustomError(PROBLEM, message, {"at": at})


def says(message: str | Callable[[Any], str], json_schema_input_type: Any = None) -> WrapValidator:
    """Whatever is wrong with the value, say `message` (a function of the value, or a sentence).

    For leaves only: it replaces every error underneath, with their places."""

    def check(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise problem(message(value) if callable(message) else message) from None

    if json_schema_input_type is None:
        return WrapValidator(check)
    return WrapValidator(check, json_schema_input_type=json_schema_input_type)


def shape(ok: Callable[[Any], bool], message: str) -> BeforeValidator:
    """Reject a value of the wrong shape before its items are validated (their errors keep their places)."""

    def check(value: Any) -> Any:
        if not ok(value):
            raise problem(message)
        return value

    return BeforeValidator(check)


def one_or_list(empty: str, json_schema_input_type: Any) -> WrapValidator:
    """`x` or `[x, …]` as a tuple: an empty list says `empty`, a bad single value says what its item type says."""

    def check(value: Any, handler: Callable[[Any], Any]) -> Any:
        if isinstance(value, list):
            if not value:
                raise problem(empty)
            return handler(value)
        try:
            return handler([value])
        except ValidationError as exc:  # the single value's own sentence, at the key itself (not `[0]`)
            raise problem(str(exc.errors()[0]["msg"])) from None

    return WrapValidator(check, json_schema_input_type=json_schema_input_type)


def scalar_to_str(value: Any) -> Any:
    """YAML reads `user: 1000` or `rack: 3` as numbers; these fields take them as text."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def did_you_mean(key: Any, allowed: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(key), list(allowed), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


class Doc(BaseModel):
    """A mapping of a file format. An unknown key is an error naming the allowed keys (and a close
    spelling); a missing required key is "needs KEY" at the mapping, or what `doc_needs` or
    `doc_required` say."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    doc_needs: ClassVar[dict[str, str]] = {}  # required key -> the sentence at the mapping when it is missing
    doc_required: ClassVar[dict[str, str]] = {}  # required key -> the sentence at the key itself
    _keys: tuple[str, ...] = PrivateAttr(())  # the keys as the file gave them, in its order

    @classmethod
    def unknown_key(cls, key: Any) -> str:
        names = sorted(cls.model_fields)
        return f"is not a known key{did_you_mean(key, names)} (allowed: {', '.join(names)})"

    @classmethod
    def not_mapping(cls) -> str:
        return f"must be a mapping (keys: {', '.join(sorted(cls.model_fields))})"

    @model_validator(mode="wrap")
    @classmethod
    def _known_keys(cls, data: Any, handler: Callable[[Any], Any]) -> Any:
        if isinstance(data, dict):
            if cls.model_config.get("extra") == "forbid":
                for key in data:
                    if key not in cls.model_fields:
                        raise problem(cls.unknown_key(key), key)
            for name, info in cls.model_fields.items():
                if info.is_required() and name not in data:
                    if name in cls.doc_required:
                        raise problem(cls.doc_required[name], name)
                    raise problem(cls.doc_needs.get(name, f"needs {name}"))
        elif not isinstance(data, cls):
            raise problem(cls.not_mapping())
        doc = handler(data)
        if isinstance(data, dict):
            doc._keys = tuple(str(k) for k in data)
        return doc

    def given(self) -> tuple[str, ...]:
        """The keys the file gave, in its order (defaults left out)."""
        return self._keys


def join(prefix: str, key: Any) -> str:
    """`cases` + 0 -> `cases[0]`, `cases[0]` + `id` -> `cases[0].id`: the names errors use."""
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else str(key)


def dotted(loc: Iterable[Any]) -> str:
    out = ""
    for key in loc:
        out = join(out, key)
    return out


_ABSENT = object()


def _child(node: Any, key: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(key, _ABSENT)
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return node[key]
    return _ABSENT


def _in_file(loc: Loc, data: Any, keep_last: bool) -> Loc:
    """The part of pydantic's location that names places in the file: union tags and `[key]` left out."""
    out: list[str | int] = []
    node = data
    for i, key in enumerate(loc):
        child = _child(node, key)
        if child is not _ABSENT:
            node = child
        elif not (keep_last and i == len(loc) - 1):
            continue  # a tag of a union member, or pydantic's `[key]` for a mapping's key
        out.append(key)
    return tuple(out)


MAPPING_ERRORS = {"model_type", "model_attributes_type", "dict_type", "dataclass_type"}


def problems(exc: ValidationError, data: Any) -> list[tuple[Loc, str]]:
    """Each error as (its place in the file, one sentence), in pydantic's order."""
    out: list[tuple[Loc, str]] = []
    for err in exc.errors(include_url=False):
        kind = err["type"]
        loc = _in_file(tuple(err["loc"]), data, keep_last=kind == "missing")
        if kind == PROBLEM:
            at = tuple((err.get("ctx") or {}).get("at", ()))
            out.append((loc + at, str(err["msg"]).replace("{here}", dotted(loc))))
        elif kind == "missing":
            out.append((loc[:-1], f"needs {loc[-1]}"))
        elif kind == "extra_forbidden":
            out.append((loc, "is not a known key"))
        elif kind in MAPPING_ERRORS:
            out.append((loc, "must be a mapping"))
        else:  # not worded by the models (a gap to fill there): pydantic's sentence
            msg = str(err["msg"])
            out.append((loc, "is invalid: " + msg[:1].lower() + msg[1:]))
    return out


def _untitled(node: Any) -> Any:
    """pydantic titles every property after its name ("Min Duration S"); editors show the description instead."""
    if isinstance(node, dict):
        out = {k: _untitled(v) for k, v in node.items()}
        if isinstance(out.get("properties"), dict):
            out["properties"] = {k: {kk: vv for kk, vv in v.items() if kk != "title"} if isinstance(v, dict) else v
                                 for k, v in out["properties"].items()}
        return out
    if isinstance(node, list):
        return [_untitled(v) for v in node]
    return node


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a file format, as editors read it."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **_untitled(model.model_json_schema())}


def chars_at_most(bound: int) -> AfterValidator:
    """A string's maximum length in characters (the plan's and the job specs' text fields)."""

    def check(value: str) -> str:
        if len(value) > bound:
            raise problem(f"must be at most {bound} characters, got {len(value)}")
        return value

    return AfterValidator(check)
