"""The JupyterLab extension uses the library's tag vocabulary, and nothing else.

`jupyter_extension/src/vocabulary.ts` is generated from `src/nbops/notebook/vocabulary.json`
by `jupyter_extension/scripts/gen-vocabulary.mjs` (run by every build); the schema's menu,
shortcuts and the built labextension must name one command per role. No browser needed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nbops.notebook.tags import Role, vocabulary

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "jupyter_extension"
GENERATED = EXTENSION / "src" / "vocabulary.ts"
SCHEMA = EXTENSION / "schema" / "plugin.json"
BUILT = REPO / "src" / "nbops" / "labextension"


def generated_vocabulary() -> dict:
    text = GENERATED.read_text("utf-8")
    match = re.search(
        r"// BEGIN VOCABULARY JSON\nexport const VOCABULARY: IVocabulary = (.*?);\n"
        r"// END VOCABULARY JSON",
        text,
        re.S,
    )
    assert match, f"{GENERATED} lacks the generated vocabulary block"
    return json.loads(match.group(1))


def test_generated_vocabulary_matches_the_library() -> None:
    assert generated_vocabulary() == vocabulary(), (
        "jupyter_extension/src/vocabulary.ts is stale: run `jlpm build:vocab` in jupyter_extension"
    )
    source = json.loads((REPO / "src/nbops/notebook/vocabulary.json").read_text("utf-8"))
    assert generated_vocabulary() == source


def test_vocabulary_roles_are_the_library_roles() -> None:
    assert [r["name"] for r in generated_vocabulary()["roles"]] == [r.value for r in Role]


def _schema_commands(schema: dict) -> tuple[list[str], list[str]]:
    [submenu] = [
        item["submenu"]
        for item in schema["jupyter.lab.menus"]["context"]
        if item.get("type") == "submenu"
    ]
    menu = [i["command"] for i in submenu["items"] if "command" in i]
    keys = [s["command"] for s in schema["jupyter.lab.shortcuts"]]
    return menu, keys


def test_schema_offers_every_role() -> None:
    schema = json.loads(SCHEMA.read_text("utf-8"))
    menu, keys = _schema_commands(schema)
    role_commands = [f"nbops:set-role-{r['name']}" for r in vocabulary()["roles"]]
    assert [c for c in menu if c.startswith("nbops:set-role-")] == role_commands
    assert [c for c in keys if c.startswith("nbops:set-role-")] == role_commands
    assert {"nbops:set-step", "nbops:clear-role"} <= set(menu) & set(keys)
    assert schema["jupyter.lab.toolbars"]["Cell"][0]["command"] == "nbops:role-menu"


def test_built_labextension_matches_the_sources() -> None:
    if not (BUILT / "package.json").is_file():
        pytest.skip("the labextension is not built (src/nbops/labextension)")
    built_schema = json.loads(
        (BUILT / "schemas" / "nbops-jupyterlab" / "plugin.json").read_text("utf-8")
    )
    assert built_schema == json.loads(SCHEMA.read_text("utf-8")), "rebuild the extension"
    bundle = "".join(p.read_text("utf-8") for p in (BUILT / "static").glob("*.js"))
    for role in vocabulary()["roles"]:
        assert role["color"] in bundle, f"the built extension lacks {role['name']}'s colour"
