"""`leadgate board`: the example pipeline board, served from an origin of its own."""

from __future__ import annotations

import argparse
from pathlib import Path

from aiohttp import web

from leadgate.cli.output import say
from leadgate.config import Settings
from leadgate.domain.errors import AppError


def cmd_board(_settings: Settings, args: argparse.Namespace) -> None:
    """Serve the pipeline board's static files from an origin of its own (README)."""
    directory: Path = args.dir
    index = directory / "index.html"
    if not index.is_file():
        raise AppError(f"no board in {directory} (pass --dir examples/pipeline-board)")

    async def page(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(index)

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_static("/", directory)
    board = f"http://{args.host}:{args.port}/?api={args.api}"
    say(f"Board:     {board}   (paste the Dev token that `make run` prints)")
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)
