"""A fleet of `cowork` processes for one scenario: workers and web processes
started with one environment, killed with SIGKILL, restarted, and stopped at
the end. Each process writes its log to a file in the scenario's folder."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

# Anything the host's environment might carry that would change what the processes do.
_SCRUB = ("SLACK_", "OPENAI_", "Microsoft", "MICROSOFT_", "COWORK_", "DATABASE_URL", "PORT")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
    env.update(PYTHONUNBUFFERED="1", COWORK_LOG_JSON="1", COWORK_LEASE_SECONDS="2")
    env.update(extra)
    return env


@dataclass
class Fleet:
    folder: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    starts: int = 0
    kills: int = 0

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        cmd = [sys.executable, "-m", "bot.ops.cli", *args]
        self.procs[name] = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, cwd=self.folder)
        log.close()
        self.starts += 1

    def worker(self, name: str, **extra: str) -> None:
        self._spawn(name, ["worker"], {**self.env, **extra})

    def web(self, name: str, port: int | None = None, *, worker: bool = False, **extra: str) -> str:
        """A web process (`serve --no-worker`), or with `worker` the whole bot in one (`serve`)."""
        self.ports[name] = port or self.ports.get(name) or free_port()
        env = {**self.env, "PORT": str(self.ports[name]), **extra}
        self._spawn(name, ["serve"] if worker else ["serve", "--no-worker"], env)
        return f"http://127.0.0.1:{self.ports[name]}"

    def kill(self, name: str) -> None:
        """SIGKILL: no cleanup, no lease release, no flush."""
        p = self.procs[name]
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            self.kills += 1
        p.wait(timeout=10)

    def dead(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is not None]

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in self.procs.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)

    def logs(self) -> str:
        return "".join(f.read_text(errors="replace") for f in sorted(self.folder.glob("*.log")))


async def wait_http(url: str, within: float = 30.0) -> None:
    """Until GET `url` answers 200 (a web process has started)."""
    import aiohttp

    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not come up within {within:g}s")
            await asyncio.sleep(0.1)


def scratch_pg(admin_url: str) -> str:
    """A fresh, migrated PostgreSQL database next to `admin_url`'s."""
    from tasks.store.schema import upgrade

    name = f"cowork_fault_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    upgrade(url)
    return url


def drop_pg(admin_url: str, url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')  # type: ignore[arg-type]
