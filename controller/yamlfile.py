"""YAML loading that remembers where every value came from, for errors like
"plan.yaml:14: cases[0].parallel must be a positive integer"."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from fleetbench.bounds import MAX_PLAN_BYTES
from fleetbench.errors import ConfigError
from fleetbench.schema_base import dotted, join, problems

M = TypeVar("M", bound=BaseModel)


@dataclass
class Located:
    """A parsed YAML document plus the line of each value, keyed by its dotted path."""

    path: Path
    data: Any
    text: str = ""
    lines: dict[str, int] = field(default_factory=dict)

    def error(self, where: str, message: str) -> ConfigError:
        line = self.line_of(where)
        loc = f"{self.path}:{line}" if line else str(self.path)
        label = f"{where} " if where else ""
        return ConfigError(f"{loc}: {label}{message}")

    def line_of(self, where: str) -> int:
        """The line of `where`, or of its nearest parent that is in the file (0: none)."""
        while where and where not in self.lines:
            parent = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", where)
            where = "" if parent == where else parent
        return self.lines.get(where, 0)

    def validate(self, model: type[M]) -> M:
        """The document as `model`, or a ConfigError for its first problem in the file (by line)."""
        try:
            return model.model_validate(self.data)
        except ValidationError as exc:
            found = [(dotted(loc), message) for loc, message in problems(exc, self.data)]
            where, message = min(found, key=lambda p: self.line_of(p[0]))
            raise self.error(where, message) from None


def _convert(node: yaml.Node, where: str, lines: dict[str, int]) -> Any:
    lines[where] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            if key in out:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            out[key] = _convert(value_node, join(where, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(v, join(where, i), lines) for i, v in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


def load_yaml(path: Path, what: str) -> Located:
    """Parse a YAML file; every failure is one ConfigError line naming the file."""
    try:
        size = path.stat().st_size
        if size > MAX_PLAN_BYTES:
            raise ConfigError(f"{what} file {path} is {size} bytes; the limit is {MAX_PLAN_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc}") from None
    return parse_yaml(text, path, what)


def parse_yaml(text: str, path: Path, what: str) -> Located:
    """Parse YAML text; `path` only names it in errors."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise ConfigError(f"{path}: nested too deep to be a {what} file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    lines: dict[str, int] = {}
    if node is None:
        raise ConfigError(f"{path}: the {what} file is empty")
    try:
        data = _convert(node, "", lines)
    except RecursionError:
        raise ConfigError(f"{path}: nested too deep to be a {what} file") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    return Located(path, data, text, lines)
