"""The Teams app package: manifest/teams/manifest.json with the bot's app id
filled in, zipped with its two icons, ready for "Upload an app" in Teams."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import bot

SOURCE = Path(bot.__file__).resolve().parents[1] / "manifest" / "teams"
FILES = ("manifest.json", "color.png", "outline.png")
PLACEHOLDER = "{{MICROSOFT_APP_ID}}"
GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def manifest_text(app_id: str, source: Path = SOURCE) -> str:
    """The manifest with the app id in place; ValueError unless it is a GUID,
    as Teams requires for both the app id and the bot id."""
    if not GUID.match(app_id):
        raise ValueError(f"MicrosoftAppId must be a GUID (the Azure Bot's app id), not {app_id!r}")
    return (source / "manifest.json").read_text(encoding="utf-8").replace(PLACEHOLDER, app_id)


def build_package(app_id: str, out: Path, source: Path = SOURCE) -> Path:
    """Write the zip to `out` (a file, or a folder to put cowork-teams.zip in)."""
    target = out / "cowork-teams.zip" if out.is_dir() else out
    text = manifest_text(app_id, source)
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as package:
        package.writestr("manifest.json", text)
        for name in FILES[1:]:
            package.write(source / name, arcname=name)
    return target
