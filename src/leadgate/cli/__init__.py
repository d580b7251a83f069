"""`leadgate …` commands. Nothing imports this package but the `leadgate` script.

Each command lives in a module of its own, imported only when it runs: a command that only
talks to the database starts without loading the gateway (strawberry, the app), which takes a
second of every `serve`'s start.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

import asyncpg

from leadgate.cli.output import say
from leadgate.cli.parser import build_parser
from leadgate.config import InvalidSetting, Settings
from leadgate.domain.errors import AppError


def command(name: str) -> Callable[..., None]:
    """The function that runs a command, named by the parser as `module:function`."""
    module, function = name.split(":")
    run: Callable[..., None] = getattr(importlib.import_module(f"leadgate.cli.{module}"), function)
    return run


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        command(args.run)(Settings.from_env(), args)
    except InvalidSetting as exc:
        # A configuration mistake, like a bad argument: argparse's status, no traceback.
        say(f"error: {exc}", stream=sys.stderr)
        raise SystemExit(2) from exc
    except AppError as exc:
        say(f"error: {exc.message}", stream=sys.stderr)
        raise SystemExit(1) from exc
    except (OSError, asyncpg.PostgresError) as exc:
        say(f"error: cannot use the database: {exc}", stream=sys.stderr)
        raise SystemExit(1) from exc
    except KeyboardInterrupt:
        raise SystemExit(130) from None
