"""`werk iam reset-admin`: a new password for a lost administrator, straight in the database.

It runs offline, on the data directory of a stopped werk: whoever can read and write that
directory controls werk anyway, so file access is the proof of authority here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import sessionmaker

from werk.cli.errors import one_line_errors
from werk.cli.iam_common import err, secret_once
from werk.core.db import create_db_engine, upgrade_schema
from werk.core.errors import NotFound, ValidationFailed
from werk.core.settings import Settings, get_settings


def register(app: typer.Typer) -> None:
    """Add `werk iam reset-admin` to `werk iam`."""
    app.command("reset-admin")(reset_admin_command)


@one_line_errors
def reset_admin_command(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="data directory of the stopped werk")
    ],
    username: Annotated[str, typer.Option("--username", help="the user to reset")] = "admin",
) -> None:
    """Give a user a new generated password, unlock and enable it, end its sessions."""
    settings = get_settings().model_copy(update={"data_dir": data_dir})
    settings = Settings.model_validate(settings.model_dump())
    if settings.database_url is None and not (data_dir / "werk.db").is_file():
        raise NotFound(f"no werk database in {data_dir.resolve()}", code="no_database")
    password = reset_password(settings, username)
    err.print(f"reset the password of {username}; its tokens and sessions were revoked")
    secret_once(password, "password")


def reset_password(settings: Settings, username: str) -> str:
    """Set a generated password for `username`; enable, unlock, revoke; return the password."""
    from werk.iam.bootstrap import SYSTEM
    from werk.iam.directory_rules import generate_password
    from werk.iam.service import Iam

    engine = create_db_engine(settings.relational_url)
    try:
        upgrade_schema(engine)
        iam = Iam(sessionmaker(engine, expire_on_commit=False), settings)
        principal_id = iam.directory.find_by_name(username)
        if principal_id is None:
            raise NotFound(f"no user named {username!r} in this database", code="not_found")
        if iam.directory.get_principal(SYSTEM, principal_id).kind != "user":
            raise ValidationFailed(f"{username!r} is not a user", code="not_a_user")
        password = generate_password()
        iam.directory.set_password(SYSTEM, principal_id, password)
        iam.directory.update_principal(SYSTEM, principal_id, disabled=False)
        iam.directory.revoke_all(SYSTEM, principal_id)
    finally:
        engine.dispose()
    return password
