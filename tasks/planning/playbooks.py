"""Playbooks: named plans in YAML (COWORK_PLAYBOOKS), run without an LLM.

name: announce
description: Post an announcement once a person approves it
params:
  channel: {type: string}
  text: {type: string}
steps:
  - key: post
    skill: chat.post
    args: {channel: "{{ channel }}", text: "{{ text }}"}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tasks.rules.json_types import JSON
from tasks.rules.plans import PlanError, StepJSON, parse_plan

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
}


class PlaybookError(ValueError):
    pass


@dataclass(frozen=True)
class Param:
    name: str
    type: str = "string"
    default: JSON = None
    required: bool = True
    description: str = ""


@dataclass(frozen=True)
class Playbook:
    name: str
    description: str
    params: tuple[Param, ...]
    steps: tuple[StepJSON, ...]
    timeout_seconds: float | None = None
    budget: dict[str, object] = field(default_factory=dict)
    source: str = ""

    def usage(self) -> str:
        parts = [f"{p.name}=…" if p.required else f"[{p.name}=…]" for p in self.params]
        return " ".join([f"run {self.name}", *parts])

    def bind(self, given: Mapping[str, str]) -> dict[str, JSON]:
        """Check and convert `key=value` params; a clear error names what is wrong."""
        known = {p.name for p in self.params}
        extra = sorted(set(given) - known)
        if extra:
            raise PlaybookError(f"{self.name} takes no parameter {extra[0]!r}. Usage: {self.usage()}")
        out: dict[str, JSON] = {}
        for p in self.params:
            if p.name in given:
                out[p.name] = _convert(self.name, p, given[p.name])
            elif p.default is not None or not p.required:
                out[p.name] = p.default
            else:
                raise PlaybookError(f"{self.name} needs {p.name}. Usage: {self.usage()}")
        return out

    def plan(self) -> dict[str, object]:
        plan: dict[str, object] = {"summary": self.description, "steps": [dict(s) for s in self.steps]}
        if self.timeout_seconds:
            plan["timeout_seconds"] = self.timeout_seconds
        return plan


def _convert(playbook: str, p: Param, raw: Any) -> Any:
    if not isinstance(raw, str):
        value = raw
    elif p.type in ("number", "integer"):
        try:
            value = int(raw) if p.type == "integer" else float(raw)
        except ValueError:
            raise PlaybookError(f"{playbook}: {p.name} must be a {p.type}, not {raw!r}") from None
    elif p.type == "boolean":
        if raw.lower() not in ("true", "false", "yes", "no", "1", "0"):
            raise PlaybookError(f"{playbook}: {p.name} must be true or false, not {raw!r}")
        value = raw.lower() in ("true", "yes", "1")
    else:
        value = raw
    if not isinstance(value, _TYPES.get(p.type, (object,))):
        raise PlaybookError(f"{playbook}: {p.name} must be a {p.type}")
    return value


def parse_playbook(data: object, known_skills: Iterable[str], source: str = "") -> Playbook:
    if not isinstance(data, Mapping):
        raise PlaybookError(f"{source}: a playbook is a mapping")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or " " in name:
        raise PlaybookError(f"{source}: a playbook needs a one-word name")
    params = []
    for pname, spec in (data.get("params") or {}).items():
        spec = spec or {}
        if not isinstance(spec, Mapping) or spec.get("type", "string") not in _TYPES:
            raise PlaybookError(f"{source}: param {pname}: type must be one of {sorted(_TYPES)}")
        params.append(Param(name=str(pname), type=spec.get("type", "string"), default=spec.get("default"),
                            required=bool(spec.get("required", "default" not in spec)),
                            description=str(spec.get("description", ""))))  # fmt: skip
    try:
        checked = parse_plan({"steps": data.get("steps")}, known_skills).to_json()["steps"]
    except PlanError as e:
        raise PlaybookError(f"{source}: {name}: {e}") from e
    return Playbook(
        name=name, description=str(data.get("description", "")), params=tuple(params),
        steps=tuple(checked), timeout_seconds=data.get("timeout_seconds"),
        budget=dict(data.get("budget") or {}), source=source,
    )  # fmt: skip


def load_playbooks(folders: Iterable[str | Path], known_skills: Iterable[str]) -> dict[str, Playbook]:
    """Every *.yaml / *.yml in the folders; later folders override earlier ones."""
    skills = list(known_skills)
    books: dict[str, Playbook] = {}
    for folder in folders:
        path = Path(folder)
        if not path.is_dir():
            raise PlaybookError(f"{path}: no such playbook folder")
        for f in sorted([*path.glob("*.yaml"), *path.glob("*.yml")]):
            try:
                data = yaml.safe_load(f.read_text())
            except yaml.YAMLError as e:
                raise PlaybookError(f"{f}: not valid YAML: {e}") from e
            book = parse_playbook(data, skills, source=str(f))
            books[book.name] = book
    return books


def shipped_folder() -> Path:
    """The playbooks that ship with Cowork."""
    return Path(__file__).parent / "playbooks"


def playbook_folder() -> Path:
    """Playbooks that need the built-in skills (kept apart from the core ones,
    which run with `wait` and `chat.post` alone)."""
    return shipped_folder() / "library"


def library_playbooks(known_skills: Iterable[str]) -> dict[str, Playbook]:
    """The library playbooks whose skills are all known here (llm.* need an LLM)."""
    known = set(known_skills)
    books: dict[str, Playbook] = {}
    for f in sorted(playbook_folder().glob("*.yaml")):
        data = yaml.safe_load(f.read_text())
        needed = {s.get("skill") for s in data.get("steps") or []}
        if needed <= known:
            book = parse_playbook(data, known, source=str(f))
            books[book.name] = book
    return books
