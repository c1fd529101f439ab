"""Users and passwords (argon2): agent / qa / supervisor / admin."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.models import ROLES, User

_hasher = PasswordHasher()


class UserError(ValueError):
    pass


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(user: User, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def add_user(session: Session, username: str, role: str, password: str, display_name: str = "",
             agent_id: str | None = None) -> User:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    if len(password) < 8:
        raise UserError("password must have at least 8 characters")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise UserError(f"user {username!r} exists")
    if role == "agent" and not agent_id:
        raise UserError("an agent needs an agent id (坐席工号, the queue member name)")
    user = User(username=username, role=role, password_hash=hash_password(password),
                display_name=display_name or username, agent_id=agent_id)
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def count_users(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User)) or 0


def ensure_first_admin(session: Session) -> str | None:
    """On an empty users table create ``admin`` with a random one-time password and return it; else None."""
    if count_users(session):
        return None
    password = generate_password()
    add_user(session, "admin", "admin", password, display_name="管理员")
    return password
