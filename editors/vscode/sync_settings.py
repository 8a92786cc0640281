"""Write the server's settings into package.json's configuration schema.

The settings table in `lsp_server/settings.py` is the one source; this keeps
the extension's schema equal to it (`tests/editors/test_vscode_extension.py`
fails when they drift). Run: `.venv/bin/python editors/vscode/sync_settings.py`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lsp_server.settings import setting_specs

PACKAGE_JSON = Path(__file__).with_name("package.json")
PREFIX = "inkling."

CLIENT_PROPERTIES: dict[str, Any] = {
    "inkling.serverPath": {
        "type": "string",
        "default": "",
        "scope": "machine-overridable",
        "markdownDescription": "Path to the `inkling` executable. Empty: found from `#inkling.interpreter#`, "
        "the Python extension's interpreter, a `.venv` in the workspace, or `$PATH`.",
    },
    "inkling.interpreter": {
        "type": "string",
        "default": "",
        "scope": "machine-overridable",
        "markdownDescription": "Python interpreter that has Inkling installed; the server runs as "
        "`python -m lsp_server serve`.",
    },
    "inkling.trace.server": {
        "type": "string",
        "enum": ["off", "messages", "verbose"],
        "default": "off",
        "markdownDescription": "Log the protocol traffic with the server in the Inkling output channel.",
    },
}


def server_properties() -> dict[str, Any]:
    """The schema of every server setting, from the settings table."""
    properties: dict[str, Any] = {}
    for spec in setting_specs():
        schema: dict[str, Any] = {"type": spec.type_name, "default": spec.default}
        if spec.minimum is not None:
            schema["minimum"] = spec.minimum
        if spec.maximum is not None:
            schema["maximum"] = spec.maximum
        if spec.choices:
            schema["enum"] = list(spec.choices)
        if spec.type_name == "object":
            schema["additionalProperties"] = {"type": "boolean"}
        note = " Changing it reloads the model." if spec.reload else ""
        schema["markdownDescription"] = spec.help + note
        properties[PREFIX + spec.client_key] = schema
    return properties


def expected_properties() -> dict[str, Any]:
    return {**CLIENT_PROPERTIES, **server_properties()}


def main() -> None:
    package = json.loads(PACKAGE_JSON.read_text())
    package["contributes"]["configuration"]["properties"] = expected_properties()
    PACKAGE_JSON.write_text(json.dumps(package, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
