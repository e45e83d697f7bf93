"""The docs quote the code's definitions word for word."""

from pathlib import Path

from fleetbench.figures import DEFINITIONS

DOCS = Path(__file__).parents[2] / "docs"


def test_every_definition_is_in_docs_figures_md():
    text = (DOCS / "figures.md").read_text()
    for key, sentence in DEFINITIONS.items():
        assert f"- **{key}**: {sentence}" in text, key
