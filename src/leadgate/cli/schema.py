"""`leadgate export-schema`: the GraphQL schema as SDL (schema.graphql is its output)."""

from __future__ import annotations

import argparse
import sys

from leadgate.config import Settings
from leadgate.graphql.schema import export_sdl


def cmd_export_schema(_settings: Settings, _args: argparse.Namespace) -> None:
    sys.stdout.write(export_sdl())
    sys.stdout.flush()
