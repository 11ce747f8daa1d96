"""The generated reference pages are complete and current.

Every configuration key has a description, every ``notify-relay`` verb and option has help
text, and the pages in docs/reference/ are exactly what ``python docs/gen/reference.py``
writes from the code, so a new key or option without documentation fails here by name.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _load_generator():
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "docs/gen/reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


reference = _load_generator()


def test_every_configuration_key_has_a_description() -> None:
    try:
        reference.check_descriptions()
    except reference.MissingDescriptions as exc:
        pytest.fail(str(exc))


def test_every_verb_and_option_has_help_text() -> None:
    try:
        reference.check_cli()
    except reference.MissingDescriptions as exc:
        pytest.fail(str(exc))


@pytest.mark.parametrize("page", sorted(reference.PAGES), ids=lambda path: path.name)
def test_the_checked_in_page_is_what_the_generator_writes(page: Path) -> None:
    expected = reference.PAGES[page]()
    current = page.read_text(encoding="utf-8") if page.exists() else ""
    assert current == expected, (
        f"{page.relative_to(ROOT)} is out of date: run `python docs/gen/reference.py`"
    )


def test_the_configuration_page_lists_every_key_with_its_default() -> None:
    text = (ROOT / "docs/reference/configuration.md").read_text(encoding="utf-8")
    for key in reference.config_keys():
        name = key.path.rsplit(".", 1)[-1]
        heading = f"## `{key.section}`" if key.section else "## Top level"
        section = text.split(heading, 1)[1].split("\n## ", 1)[0]
        row = [line for line in section.splitlines() if line.startswith(f"| `{name}` |")]
        assert row, f"{key.path} is missing from docs/reference/configuration.md"
        assert row[0].count("|") >= 5 and row[0].split("|")[4].strip(), key.path


def test_the_key_walk_reaches_nested_sections_and_skips_computed_fields() -> None:
    paths = {key.path for key in reference.config_keys()}
    assert {"upstream.oauth.token_command", "queue.retry.jitter", "filters.sets[].rules"} <= paths
    assert not {"source", "trac_ini_report", "upstream.section"} & paths


def test_the_cli_page_names_every_verb_and_option() -> None:
    text = (ROOT / "docs/reference/cli.md").read_text(encoding="utf-8")
    for entry in reference.cli_entries():
        assert f"`{entry.command}`" in text, entry.command
        if entry.name:
            assert f"| `{entry.name}` | {entry.text.split()[0]}" in text, entry


def test_a_key_without_a_description_is_named(tmp_path: Path, monkeypatch) -> None:
    text = reference.DESCRIPTIONS.read_text(encoding="utf-8")
    trimmed = tmp_path / "config.yaml"
    trimmed.write_text(text.replace("\nlimits.timeout:", "\nlimits.timeout_gone:"))
    monkeypatch.setattr(reference, "DESCRIPTIONS", trimmed)
    with pytest.raises(reference.MissingDescriptions) as caught:
        reference.check_descriptions()
    message = str(caught.value)
    assert "'limits.timeout' has no description" in message
    assert "'limits.timeout_gone' is described but is no configuration key" in message
    assert "python docs/gen/reference.py" in message


def test_an_option_without_help_is_named(monkeypatch) -> None:
    build = reference.build_parser

    def parser_with_a_bare_option():
        parser = build()
        parser.add_argument("--undocumented")
        return parser

    monkeypatch.setattr(reference, "build_parser", parser_with_a_bare_option)
    with pytest.raises(reference.MissingDescriptions, match="notify-relay --undocumented"):
        reference.check_cli()
