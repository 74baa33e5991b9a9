"""Alembic's entry point: runs the revisions in migrations/versions against the service's database.

From the application (`kommunchatt.migrate.upgrade`) it gets an open connection; from the `alembic`
command line it connects to the database the environment names (DATABASE_URL, else SQLite in
KOMMUNCHATT_DATA_DIR), like every other process of the install.
"""

from alembic import context

from core.config import load_settings
from core.db import make_engine
from kommunchatt.migrate import include_name
from kommunchatt.schema import metadata


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        include_name=lambda name, type_, parents: include_name(name, type_, parents, metadata),
    )
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if context.is_offline_mode():
    context.configure(url=load_settings().database_url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif given is not None:
    run(given)
else:
    engine = make_engine(load_settings().database_url)
    try:
        with engine.connect() as conn:
            run(conn)
            conn.commit()
    finally:
        engine.dispose()
