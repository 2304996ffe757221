"""`python -m app ...`: serve, worker, migrate, demo-data, import-catalogue, reindex, jobs run, mailbox."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _alembic_config(database_url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    return config


def migrate(database_url: str | None = None, revision: str = "head") -> None:
    """Apply Alembic migrations (the app itself never creates tables)."""
    from alembic import command

    from app.settings import get_settings

    command.upgrade(_alembic_config(database_url or get_settings().database_url), revision)


async def _demo_data() -> None:
    from app import clock
    from app.db import session_scope
    from app.demo import load_demo
    from app.settings import get_settings

    async with session_scope(get_settings().database_url) as session:
        counts = await load_demo(session, clock.today())
    print(f"Demo library ready: {counts['branches']} branches, {counts['bibs']} titles.")
    print("Log in with card 100000017 / password hanako-2026 (see README for the others).")


async def _reindex() -> None:
    import time

    from app.db import session_scope
    from app.services.catalog import reindex_all_sync
    from app.settings import get_settings

    started = time.perf_counter()
    async with session_scope(get_settings().database_url) as session:
        titles = await session.run_sync(lambda sync: reindex_all_sync(sync.connection()))
        await session.commit()
    print(f"Search index rebuilt: {titles} titles in {time.perf_counter() - started:.1f} s.")


async def _import_catalogue(paths: list[str]) -> int:
    from tqdm import tqdm

    from app.db import session_scope
    from app.services.importer import ImportFileError, Summary, import_records, read_file
    from app.settings import get_settings

    total = Summary()
    async with session_scope(get_settings().database_url) as session:
        for name in paths:
            path = Path(name)
            try:
                with tqdm(desc=path.name, unit=" records", disable=None) as bar:
                    summary = await import_records(session, read_file(path), progress=bar.update)
            except ImportFileError as problem:
                print(f"Cannot import: {problem}", file=sys.stderr)
                return 2
            total.add(summary)
    print(f"Imported {total.imported} new, updated {total.updated}, rejected {len(total.rejected)}.")
    reasons: dict[str, int] = {}
    for rejected in total.rejected:
        reasons[rejected.reason] = reasons.get(rejected.reason, 0) + 1
    for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
        print(f"  rejected {count}: {reason}")
    for rejected in total.rejected[:20]:
        print(f"    {rejected.source}: {rejected.reason}")
    return 0 if total.imported or total.updated or not total.rejected else 1


async def _jobs_run(day: str, send: bool) -> int:
    import datetime as dt

    from app import clock
    from app.db import make_engine, make_sessionmaker
    from app.policy import get_policy
    from app.settings import get_settings
    from app.tasks.daily import run_day
    from app.tasks.mailer import deliver_pending

    try:
        date = dt.date.fromisoformat(day)
    except ValueError:
        print(f"--date must be YYYY-MM-DD, not {day!r}", file=sys.stderr)
        return 2
    settings = get_settings()
    clock.set_today(date)
    engine = make_engine(settings.database_url)
    maker = make_sessionmaker(engine)
    try:
        async with maker() as session:
            counts = await run_day(session, date, get_policy(settings.library_policy))
        print(f"Daily work for {date}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        if send:
            end_of_day = dt.datetime.combine(date, dt.time(23, 59), tzinfo=clock.TZ)
            from redis.asyncio import Redis

            redis = Redis.from_url(settings.redis_url)
            try:
                result = await deliver_pending(maker, settings, now=end_of_day, redis=redis)
            finally:
                await redis.aclose()
            print(
                f"Mail: sent {result['sent']}, not sent {result['not_sent']}, "
                f"waiting for the mail server {result['waiting']}."
            )
    finally:
        await engine.dispose()
    return 0


def serve(host: str, port: int, workers: int, server: str = "uvicorn") -> None:
    """The ASGI server: uvicorn (uvloop + httptools) or granian; see the README for the measurements."""
    from app.settings import get_settings

    settings = get_settings()
    quiet = settings.app_env == "test"
    if server == "granian":
        from granian import Granian
        from granian.constants import Interfaces, Loops

        Granian(
            "app.main:create_server_app",
            factory=True,
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            workers=max(1, workers),
            loop=Loops.uvloop if sys.platform != "win32" else Loops.asyncio,
            websockets=False,
            log_enabled=not quiet,
            log_access=settings.app_env == "development",
        ).serve()
        return
    import uvicorn

    uvicorn.run(
        "app.main:create_server_app",
        factory=True,
        host=host,
        port=port,
        workers=workers if workers > 1 else None,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http="httptools",
        proxy_headers=True,
        server_header=False,
        date_header=True,
        # Idle keep-alive connections stay open 30 s (uvicorn's default is 5 s): a client that
        # reuses one just as the server gives up on it sees its request cut off, and under load,
        # when the loop runs late, a 5 s window made that happen (seen in `python -m bench load`).
        timeout_keep_alive=30,
        log_level="warning" if quiet else "info",
        access_log=settings.app_env == "development",
    )


def worker(burst: bool = False) -> None:
    from arq.worker import run_worker

    from app.tasks.worker import WorkerSettings, environment_overrides

    run_worker(WorkerSettings, burst=burst, **environment_overrides())  # type: ignore[arg-type]


def mailbox(host: str, port: int) -> None:
    from app.devmail import run_mailbox

    run_mailbox(host, port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app", description="My Library: the library patron service"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations to DATABASE_URL")
    sub.add_parser("demo-data", help="load the demo library (idempotent)")
    p_import = sub.add_parser("import-catalogue", help="import MARC 21, MARCXML or CSV files (idempotent)")
    p_import.add_argument("files", nargs="+", metavar="FILE")
    sub.add_parser("reindex", help="rebuild the catalogue search index (searches go on meanwhile)")
    p_jobs = sub.add_parser("jobs", help="the daily work (pickup mails, expiry, reminders) for a given day")
    jobs_sub = p_jobs.add_subparsers(dest="jobs_command", required=True)
    p_run = jobs_sub.add_parser("run", help="run the day's jobs as of --date")
    p_run.add_argument("--date", required=True, help="YYYY-MM-DD")
    p_run.add_argument(
        "--no-send", action="store_true", help="decide the notices but leave sending to the worker"
    )
    p_serve = sub.add_parser("serve", help="run the web app")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=int, default=8000)
    p_serve.add_argument("--workers", type=int, default=1)
    p_serve.add_argument(
        "--server",
        choices=("uvicorn", "granian"),
        default="uvicorn",
        help="the ASGI server (README: measured)",
    )
    p_worker = sub.add_parser("worker", help="run the arq worker")
    p_worker.add_argument("--burst", action="store_true", help="run queued jobs, then exit")
    p_mail = sub.add_parser("mailbox", help="development SMTP server that keeps every mail under var/mailbox")
    p_mail.add_argument("--host", default="127.0.0.1")
    p_mail.add_argument("--port", type=int, default=1025)
    args = parser.parse_args(argv)

    from app.settings import SettingsError

    try:
        if args.command == "migrate":
            migrate()
        elif args.command == "demo-data":
            asyncio.run(_demo_data())
        elif args.command == "import-catalogue":
            return asyncio.run(_import_catalogue(args.files))
        elif args.command == "reindex":
            asyncio.run(_reindex())
        elif args.command == "jobs":
            return asyncio.run(_jobs_run(args.date, not args.no_send))
        elif args.command == "serve":
            serve(args.host, args.port, args.workers, args.server)
        elif args.command == "worker":
            worker(args.burst)
        elif args.command == "mailbox":
            mailbox(args.host, args.port)
    except SettingsError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        return 2
    return 0
