"""`hotline user add|list`: web users (agent / qa / supervisor / admin) with argon2 password hashes."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import select

from config import Settings
from config.log import get_logger
from store.db import open_database
from store.migrate import check_schema
from store.models import ROLES, User
from store.users import UserError, add_user, generate_password

log = get_logger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    user = sub.add_parser("user", help="web users").add_subparsers(dest="user_command", required=True)
    add = user.add_parser("add", help="add a user; prints a generated password unless --password-stdin")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--agent-id", help="坐席工号 (the queue member name); required for agents")
    add.add_argument("--display-name", default="")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add.set_defaults(func=add_command)
    ls = user.add_parser("list", help="list users")
    ls.set_defaults(func=list_command)


def add_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        generated = False
    else:
        password = generate_password()
        generated = True
    db = open_database(settings.database.url, echo=settings.database.echo)
    try:
        check_schema(db)
        with db.write() as session:
            if args.agent_id and session.scalar(select(User.id).where(User.agent_id == args.agent_id)) is not None:
                raise UserError(f"agent id {args.agent_id!r} is taken")
            user = add_user(session, args.username, args.role, password, display_name=args.display_name,
                            agent_id=args.agent_id)
            role, agent_id = user.role, user.agent_id
    except UserError as exc:
        sys.stderr.write(f"hotline user add: {exc}\n")
        return 1
    except Exception as exc:  # noqa: BLE001 - schema out of date, database down: say so, no traceback
        sys.stderr.write(f"hotline user add: {exc}\n")
        return 1
    finally:
        db.dispose()
    log.info("user_added", username=args.username, role=role, agent_id=agent_id)
    if generated:
        sys.stdout.write(f"{args.username}\t{password}\n")
    return 0


def list_command(args: argparse.Namespace, settings: Settings) -> int:
    db = open_database(settings.database.url, echo=settings.database.echo)
    try:
        check_schema(db)
        with db.session() as session:
            users = list(session.scalars(select(User).order_by(User.username)))
    except Exception as exc:  # noqa: BLE001
        sys.stderr.write(f"hotline user list: {exc}\n")
        return 1
    finally:
        db.dispose()
    for u in users:
        sys.stdout.write(f"{u.username}\t{u.role}\t{u.agent_id or '-'}\t{'active' if u.active else 'inactive'}\n")
    return 0
