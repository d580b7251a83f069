"""`leadgate dev-token`: development tokens a `serve --demo` gateway trusts."""

from __future__ import annotations

import argparse
from uuid import UUID

from leadgate.cli.output import say
from leadgate.config import Settings
from leadgate.domain.models import Role
from leadgate.services import dev_tokens


def dev_token(settings: Settings, org: UUID, *, role: Role, ttl_seconds: float) -> str:
    return dev_tokens.mint(
        settings.data_dir,
        organization_id=org,
        role=role,
        ttl_seconds=ttl_seconds,
        subject="dev-user",
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        organization_claim=settings.jwt_org_claim,
        role_claim=settings.jwt_role_claim,
    )


def cmd_dev_token(settings: Settings, args: argparse.Namespace) -> None:
    # Offline: the gateway checks the organization when the token is used.
    say(dev_token(settings, args.org, role=args.role, ttl_seconds=args.ttl))
