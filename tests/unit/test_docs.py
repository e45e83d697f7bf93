"""The docs quote the code's definitions word for word."""

from pathlib import Path

from fleetbench.figures import DEFINITIONS

DOCS = Path(__file__).parents[2] / "docs"


def test_every_definition_is_in_docs_figures_md():
    text = (DOCS / "figures.md").read_text()
    for key, sentence in DEFINITIONS.items():
        assert f"- **{key}**: {sentence}" in text, key


def test_every_shared_fixture_is_in_docs_testing_md():
    import ast

    tree = ast.parse((Path(__file__).parents[1] / "conftest.py").read_text())
    fixtures = [f.name for f in tree.body if isinstance(f, ast.FunctionDef)
                and any("fixture" in ast.unparse(d) for d in f.decorator_list)]
    text = (DOCS / "testing.md").read_text()
    assert len(fixtures) >= 8
    for name in fixtures:
        assert f"`{name}" in text, name
