"""Every report string exists in English and Chinese with the same fields, and the renderers ask for no
key the table lacks (checked on their source, so a branch no test reaches is covered too)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from fleetbench.controller.report import i18n
from fleetbench.figures import DEFINITIONS

REPORT = Path(i18n.__file__).parent
RENDERERS = ("content.py", "markdown.py", "html.py", "xlsx.py")


def test_every_key_has_both_languages_with_the_same_fields():
    for key, texts in i18n.TEXT.items():
        assert set(texts) == set(i18n.LANGS), key
        assert all(texts[lang].strip() for lang in i18n.LANGS), key
        assert i18n.placeholders(texts["en"]) == i18n.placeholders(texts["zh"]), key


def test_chinese_reads_like_the_hand_written_reports():
    zh = {k: v["zh"] for k, v in i18n.TEXT.items()}
    for word in ("基本信息", "测试环境", "硬件配置", "软件配置", "测试用例", "测试目的", "测试过程", "预期结果",
                 "测试结果", "结论", "附录", "上述机器数量", "操作系统", "内核版本", "通过"):
        assert any(word in v for v in zh.values()), word


def test_every_definition_is_translated():
    assert set(i18n.DEFINITIONS_ZH) == set(DEFINITIONS)
    assert i18n.definition("ttft", "en") == DEFINITIONS["ttft"]
    assert i18n.definition("ttft", "zh").startswith("首 token 时延")


KEY = re.compile(r"^[a-z_]+\.[a-z_0-9.]+$")


def _keys_used(path: Path) -> tuple[set[str], set[str]]:
    """Every string constant shaped like a key of a known group ("sum.requests", also in the tables of
    (key, figure, format) tuples that t() is called on), and the literal prefixes of keys built with an
    f-string."""
    groups = {k.split(".")[0] for k in i18n.TEXT}
    literal, prefixes = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and KEY.match(node.value) \
                and node.value.split(".")[0] in groups:
            literal.add(node.value)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "t" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.JoinedStr):
                assert isinstance(arg.values[0], ast.Constant), f"{path.name}:{node.lineno}: key without a prefix"
                prefixes.add(str(arg.values[0].value))
    return literal, prefixes


@pytest.mark.parametrize("name", RENDERERS)
def test_renderers_use_no_missing_key(name):
    path = REPORT / name
    if not path.exists():
        pytest.skip(f"{name} not written yet")
    literal, prefixes = _keys_used(path)
    assert literal, f"{name} uses no i18n key at all"
    missing = sorted(k for k in literal if k not in i18n.TEXT)
    assert not missing, f"{name} uses keys missing from i18n.TEXT: {missing}"
    for p in prefixes:
        assert any(k.startswith(p) for k in i18n.TEXT), f"{name}: no key starts with {p!r}"


def test_t_fills_fields_and_rejects_unknown_language():
    assert i18n.t("title", "zh", plan="P") == "验收测试报告：P"
    assert i18n.t("title", "en", plan="P") == "Acceptance report: P"
    with pytest.raises(ValueError, match="unknown report language"):
        i18n.t("title", "fr", plan="P")
    with pytest.raises(KeyError):
        i18n.t("no.such.key", "en")
