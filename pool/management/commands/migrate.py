"""`migrate`, one app server at a time.

Several app servers started together on one PostgreSQL (`make run` on each node) would each
create the same tables, and all but the first fail ("duplicate key value violates unique
constraint pg_type_typname_nsp_index"). Each takes a lock first; the others wait for it, then
find nothing left to do. The lock is held by a connection of its own, outside the pool, so it
goes with the process whatever happens to the migration."""

import psycopg
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import connections
from psycopg.conninfo import make_conninfo

from pool.wakeup import conninfo

# An advisory lock id of the project's own (the bytes of "JPTmigr").
MIGRATE_LOCK = int.from_bytes(b"JPTmigr", "big")


class Command(DjangoMigrate):
    def handle(self, *args, **options):
        if connections[options["database"]].vendor != "postgresql":
            return super().handle(*args, **options)  # SQLite: one node, and its own write lock
        with psycopg.connect(make_conninfo("", **conninfo()), autocommit=True) as lock:
            taken = lock.execute("SELECT pg_try_advisory_lock(%s)", [MIGRATE_LOCK]).fetchone()
            if not (taken and taken[0]):
                self.stdout.write("Another app server is migrating this database; waiting for it to finish.")
                lock.execute("SELECT pg_advisory_lock(%s)", [MIGRATE_LOCK])
            return super().handle(*args, **options)
