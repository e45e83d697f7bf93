"""Fleet file labels and `--nodes label=value` selectors."""

from pathlib import Path

import pytest

from fleetbench.controller.fleet import load_fleet, resolve_nodes
from fleetbench.errors import ConfigError

FLEET = """\
nodes:
  n1: {address: "10.0.0.11:50051", labels: {gpu: h200, rack: a3}}
  n2: {address: "10.0.0.12:50051", labels: {gpu: h20}}
  n3: {address: "10.0.0.13:50051", labels: {gpu: h200, rack: b1}}
  n4: "10.0.0.14:50051"
"""


def fleet(tmp_path: Path, text: str = FLEET) -> Path:
    p = tmp_path / "fleet.yaml"
    p.write_text(text)
    return p


def test_labels_are_kept_and_select_nodes_in_file_order(tmp_path):
    f = fleet(tmp_path)
    assert load_fleet(f)["n1"].labels == (("gpu", "h200"), ("rack", "a3"))
    assert [n.name for n in resolve_nodes("gpu=h200", f)] == ["n1", "n3"]
    assert [n.name for n in resolve_nodes("gpu=h20,n4", f)] == ["n2", "n4"]


def test_a_selector_matching_nothing_or_twice_is_an_error(tmp_path):
    f = fleet(tmp_path)
    with pytest.raises(ConfigError, match=r"no node of the fleet file .* has the label 'gpu=910b'"):
        resolve_nodes("gpu=910b", f)
    with pytest.raises(ConfigError, match="names n1 more than once"):
        resolve_nodes("gpu=h200,n1", f)


def test_bad_labels_name_the_line(tmp_path):
    f = fleet(tmp_path, "nodes:\n  n1: {address: \"10.0.0.11:50051\", labels: {gpu: [a, b]}}\n")
    with pytest.raises(ConfigError, match=r"fleet.yaml:2: nodes.n1.labels.gpu label and value must be"):
        load_fleet(f)
