"""procrastinate's command line and admin shell on finsync's queue (reads FINSYNC_DATABASE_URL):

    procrastinate --app=finsync.infrastructure.jobs.admin.app shell
    procrastinate --app=finsync.infrastructure.jobs.admin.app healthchecks

Importing this module connects to nothing; procrastinate opens the app when a command runs.
"""

from __future__ import annotations

from procrastinate import App, PsycopgConnector

from finsync.config import Settings
from finsync.infrastructure.jobs.procrastinate_queue import psycopg_dsn

app = App(connector=PsycopgConnector(conninfo=psycopg_dsn(Settings().database_url), min_size=1, max_size=2))
