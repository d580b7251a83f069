"""Running the real `leadgate` console script from tests."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

LEADGATE: Final = Path(sys.executable).with_name("leadgate")
COMMAND_TIMEOUT: Final = 60.0


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str

    def ok(self) -> Completed:
        assert self.returncode == 0, f"exit {self.returncode}\n{self.stdout}\n{self.stderr}"
        return self


async def leadgate(*args: str, env: Mapping[str, str], cwd: Path | None = None) -> Completed:
    """Run the console script to completion and capture its output."""
    process = await asyncio.create_subprocess_exec(
        str(LEADGATE),
        *args,
        env=dict(env),
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()
    assert process.returncode is not None
    return Completed(process.returncode, stdout.decode(), stderr.decode())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
