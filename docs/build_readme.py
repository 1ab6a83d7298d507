"""README.md is built from the parts in docs/ and the settings' own
descriptions, so the configuration table never drifts from the code:

    python docs/build_readme.py          # write README.md
    python docs/build_readme.py --check  # exit 1 if README.md is out of date (a test runs this)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PARTS = ["readme_head.md", "slack.md", "teams.md", "deployment.md", "readme_tail.md"]


def config_table() -> str:
    from bot.assembly.config import Settings

    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for field in Settings.model_fields.values():
        alias: Any = field.validation_alias
        names = getattr(alias, "choices", None) or [alias]
        default = field.default
        shown = "—" if default in (None, "") or "Secret" in str(field.annotation) else str(default)
        rows.append(f"| `{names[0]}` | {shown} | {field.description or ''} |")
    return "\n".join(rows)


def build() -> str:
    parts = [(ROOT / "docs" / name).read_text().strip("\n") for name in PARTS]
    return "\n\n".join(parts).replace("CONFIG_TABLE", config_table()) + "\n"


def main(argv: list[str]) -> int:
    text = build()
    readme = ROOT / "README.md"
    if "--check" in argv:
        if readme.read_text() != text:
            print("README.md is out of date: run python docs/build_readme.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
