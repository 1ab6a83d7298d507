"""The Teams app manifest and package: valid against the 1.17 schema, the app
id filled in, icons of the sizes Teams asks for."""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from pathlib import Path

import jsonschema
import pytest

from bot.ops.teams_package import SOURCE, build_package, manifest_text
from tests.conftest import SCHEMAS

APP_ID = "8c2f4b1e-3d5a-4f6b-9c7d-0e1f2a3b4c5d"


def png_info(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, colour type, raw scanlines) of an 8-bit PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert depth == 8
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return width, height, colour, zlib.decompress(idat)


def alphas(data: bytes) -> list[int]:
    width, height, colour, raw = png_info(data)
    assert colour == 6  # RGBA
    stride = 1 + width * 4
    return [raw[row * stride + 1 + x * 4 + 3] for row in range(height) for x in range(width)]


def test_manifest_with_the_app_id_is_valid_against_the_1_17_schema():
    schema = json.loads((SCHEMAS / "teams-manifest-1.17.json").read_text())
    manifest = json.loads(manifest_text(APP_ID))
    assert [e.message for e in jsonschema.Draft4Validator(schema).iter_errors(manifest)] == []
    assert manifest["manifestVersion"] == "1.17"
    assert manifest["id"] == manifest["bots"][0]["botId"] == APP_ID
    assert sorted(manifest["bots"][0]["scopes"]) == ["groupChat", "personal", "team"]


def test_the_committed_manifest_keeps_placeholders_not_a_real_id():
    assert "{{MICROSOFT_APP_ID}}" in (SOURCE / "manifest.json").read_text()


def test_color_icon_is_192_square_and_opaque():
    width, height, _, _ = png_info((SOURCE / "color.png").read_bytes())
    assert (width, height) == (192, 192)
    assert set(alphas((SOURCE / "color.png").read_bytes())) == {255}


def test_outline_icon_is_32_square_white_on_transparent():
    data = (SOURCE / "outline.png").read_bytes()
    width, height, _, raw = png_info(data)
    assert (width, height) == (32, 32)
    alpha = alphas(data)
    assert 0 in alpha and 255 in alpha  # a transparent background around a drawn mark
    stride = 1 + width * 4
    drawn = [
        tuple(raw[r * stride + 1 + x * 4 : r * stride + 4 + x * 4])
        for r in range(height)
        for x in range(width)
        if raw[r * stride + 1 + x * 4 + 3]
    ]
    assert set(drawn) == {(255, 255, 255)}


def test_package_zip_holds_the_filled_manifest_and_both_icons(tmp_path: Path):
    path = build_package(APP_ID, tmp_path)
    with zipfile.ZipFile(path) as package:
        assert sorted(package.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(package.read("manifest.json"))
        assert package.read("color.png") == (SOURCE / "color.png").read_bytes()
    assert manifest["bots"][0]["botId"] == APP_ID
    assert "{{" not in json.dumps(manifest)


def test_a_non_guid_app_id_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="GUID"):
        build_package("my-bot", tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()
