"""editors/helix/languages.toml parses and names exactly the languages and settings the server supports.

No Helix build is installable here (no Debian package, nothing on PyPI or npm),
so this checks the file against the server's own tables instead.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from lsp_server.languages import LANGUAGES, language_for_id
from lsp_server.settings import setting_specs

CONFIG = Path(__file__).resolve().parents[2] / "editors" / "helix" / "languages.toml"

# Helix's language name -> the languageId it sends (from Helix's own languages.toml).
HELIX_LANGUAGE_IDS = {"jsx": "javascriptreact", "tsx": "typescriptreact"}


def test_server_entry_starts_inkling_serve() -> None:
    config = tomllib.loads(CONFIG.read_text())
    server = config["language-server"]["inkling"]
    assert Path(server["command"]).name == "inkling"
    assert server["args"] == ["serve"]
    known = {spec.client_key: spec for spec in setting_specs()}
    for key, value in server.get("config", {}).items():
        assert key in known, f"unknown setting {key}"
        assert value == known[key].default, f"{key}: the example should show the server's default"


def test_languages_match_the_server() -> None:
    config = tomllib.loads(CONFIG.read_text())
    covered = set()
    for language in config["language"]:
        lsp_id = HELIX_LANGUAGE_IDS.get(language["name"], language["name"])
        spec = language_for_id(lsp_id)
        assert spec is not None, f"Helix language {language['name']} ({lsp_id}) has no Inkling grammar"
        assert lsp_id in spec.lsp_ids
        covered.add(spec.id)
        servers = language["language-servers"]
        # Inkling comes alongside the editor's own servers, never instead of them.
        assert servers[-1] == "inkling" and len(servers) > 1 and servers.count("inkling") == 1
    assert covered == {spec.id for spec in LANGUAGES}
