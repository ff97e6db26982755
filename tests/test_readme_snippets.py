"""The README's Python examples for data validation and slice metrics run as written.

Every ```python block of the named sections runs in a fresh namespace, in a temporary folder;
a block preceded by the line `<!-- not runnable -->` is skipped (none is today)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SECTIONS = ("Data validation", "Slice metrics")
SKIP_MARK = "<!-- not runnable -->"


def _section(text: str, title: str) -> str:
    match = re.search(rf"^(#+) {re.escape(title)}.*$", text, flags=re.MULTILINE)
    assert match, f"README has no section {title!r}"
    level = len(match.group(1))
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, flags=re.MULTILINE)
    return rest[: end.start()] if end else rest


def _blocks(section: str) -> list[str]:
    blocks = []
    for match in re.finditer(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)\n```", section, re.S):
        if match.group("before").strip() != SKIP_MARK:
            blocks.append(match.group("code"))
    return blocks


def _examples() -> list[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    return [
        (f"{title} #{i}", code)
        for title in SECTIONS
        for i, code in enumerate(_blocks(_section(text, title)), start=1)
    ]


def test_each_named_section_has_a_python_example() -> None:
    titles = {name.split(" #")[0] for name, _ in _examples()}
    assert titles == set(SECTIONS)


@pytest.mark.parametrize(("name", "code"), _examples(), ids=[n for n, _ in _examples()])
def test_the_readme_example_runs_as_written(
    name: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md ({name})", "exec"), {"__name__": "__readme__"})
