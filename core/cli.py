"""The ``kizuna`` command.

Exit codes: 0 success, 1 a runtime failure (CRM, store, delivery), 2 bad configuration or input —
in which case nothing has been written.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from bot.blocks import render_text
from core.app import Decisions, Kizuna, Rules, TickReport
from core.config import Settings, load_settings
from core.errors import ConfigError, KizunaError
from core.logs import configure as configure_logging
from core.store import Store

app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                  help="Kizuna: customer-success automation for CSM teams.")
playbooks_app = typer.Typer(no_args_is_help=True, help="Inspect and validate playbooks.")
app.add_typer(playbooks_app, name="playbooks")

out = Console()
err = Console(stderr=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    configure_logging(verbose=verbose)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except ConfigError as exc:
        err.print(f"[bold red]configuration error[/]\n{exc.describe()}", markup=True,
                  highlight=False)
        raise typer.Exit(2) from None
    except KizunaError as exc:
        err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        raise typer.Exit(1) from None


def _open(settings: Settings, *, crm: str | None = None, slack: bool = False,
          **kwargs: Any) -> Kizuna:
    """Validate everything first, then open the store and the connector.

    With ``slack`` and ``SLACK_BOT_TOKEN`` set, nudges go to Slack instead of the terminal.
    """
    from connectors.base import create_connector

    rules = Rules.load(settings)
    if crm is not None:
        settings = Settings(settings.config.model_copy(update={"crm": crm}),
                            settings.env.model_copy(update={"kizuna_crm": None}),
                            settings.config_path)
    connector = create_connector(settings)
    connector.check()
    store = Store.open(settings.database_url)
    kizuna = Kizuna(settings, rules, store, connector, **kwargs)
    if slack and settings.env.slack_bot_token is not None:
        from bot.app import build_bot

        build_bot(settings, kizuna, socket_mode=True)  # sets kizuna.notifier
    return kizuna


def _lang(settings: Settings) -> str:
    return settings.config.language


# -- demo ---------------------------------------------------------------------------------------

@app.command()
def demo(
    reset: Annotated[bool, typer.Option(help="Forget the demo CRM and its plays first.")] = False,
    show: Annotated[int, typer.Option(help="Nudges shown in full per CSM.")] = 2,
) -> None:
    """Seed the demo CRM, run one tick, and show what each CSM would receive."""
    with _errors():
        settings = load_settings()
        if reset:
            _reset_demo(settings)
        kizuna = _open(settings, crm="demo")
        first = not kizuna.store.has_health_history(kizuna.source)
        sync = kizuna.sync()
        if first:
            kizuna.backfill_health()
        report = kizuna.tick(sync=False)
        report.sync = sync
        _print_demo(kizuna, report, show)


def _reset_demo(settings: Settings) -> None:
    """Forget the demo: its CRM state file and the store — but never a store with real data."""
    url = settings.database_url
    db = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None
    if db is None:
        raise ConfigError("--reset only deletes a SQLite store; point KIZUNA_DATABASE_URL at a "
                          "separate SQLite file for the demo", field="KIZUNA_DATABASE_URL")
    if db.exists():
        from sqlalchemy import select

        from core import schema
        store = Store.open(url)
        try:
            with store.engine.connect() as conn:
                other = conn.execute(select(schema.accounts.c.source).where(
                    schema.accounts.c.source != "demo").limit(1)).scalar()
        finally:
            store.close()
        if other is not None:
            raise ConfigError(f"the store {db} also holds {other} data; --reset would delete it. "
                              "Use a separate KIZUNA_DATABASE_URL for the demo.",
                              field="KIZUNA_DATABASE_URL")
    (settings.data_dir / "demo-crm.json").unlink(missing_ok=True)
    if db is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)


def _print_demo(kizuna: Kizuna, report: TickReport, show: int) -> None:
    lang = kizuna.config.language
    d, delivery = report.decisions, report.delivery
    synced = sum(report.sync.counts.upserted.values()) if report.sync else 0
    out.rule("Kizuna demo")
    out.print(f"Synced {synced} records from the demo CRM; scored {d.accounts} accounts "
              f"on {d.today.isoformat()} ({kizuna.config.timezone}).", highlight=False)
    out.print("Health: " + ", ".join(f"{k} {v}" for k, v in sorted(d.bands.items()))
              + " · Portfolio: " + ", ".join(f"{k} {v}" for k, v in sorted(d.cells.items())),
              highlight=False)
    if not delivery.nudges and not delivery.tasks:
        open_count = kizuna.ledger.counts(kizuna.source).get("open", 0)
        out.print(f"\nNo new tasks or nudges: every play that fires is already in the ledger "
                  f"({open_count} open). Run `kizuna demo --reset` to start over.",
                  highlight=False)
        _print_errors(delivery.errors)
        return
    by_owner: dict[str | None, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for nudge in delivery.nudges:
        by_owner[nudge.recipient]["nudges"].append(nudge)
    for play, task_id in delivery.tasks:
        account = kizuna.store.account(kizuna.source, play.account_id)
        by_owner[account.owner_email if account else None]["tasks"].append((play, task_id))
    drafts = {dr.play_key: dr for dr in delivery.drafts}
    for owner in sorted(by_owner, key=lambda o: o or ""):
        items = by_owner[owner]
        csm = kizuna.csm(owner)
        name = csm["name_en" if lang == "en" else "name_ja"]
        out.rule(f"{name} <{owner}> — {len(items['nudges'])} nudges, "
                 f"{len(items['tasks'])} CRM tasks")
        for nudge in items["nudges"][:show]:
            out.print(Panel(render_text(nudge.payload), title="Slack DM", expand=False),
                      highlight=False)
        if len(items["nudges"]) > show:
            out.print(f"  …and {len(items['nudges']) - show} more nudges for {name}.",
                      highlight=False)
        for play, task_id in items["tasks"][:show + 3]:
            account = kizuna.store.account(kizuna.source, play.account_id)
            title = play.title.get(account.language if account else lang, "")
            out.print(f"  ✓ CRM task {task_id}: {title} — {account.name if account else ''} "
                      f"(due {play.due_on})", highlight=False)
        if len(items["tasks"]) > show + 3:
            out.print(f"  …and {len(items['tasks']) - show - 3} more CRM tasks.", highlight=False)
        shown = next((drafts[n.play.key] for n in items["nudges"] if n.play.key in drafts), None)
        if shown is not None:
            out.print(Panel(f"To: {shown.to_name or ''} <{shown.to_email or ''}>\n"
                            f"Subject: {shown.subject}\n\n{shown.body}",
                            title=f"Drafted email ({shown.language})", expand=False),
                      highlight=False)
    out.rule()
    out.print(f"{report.opened} plays opened, {report.closed} closed, {len(delivery.tasks)} CRM "
              f"tasks created, {len(delivery.drafts)} emails drafted, {len(delivery.nudges)} "
              "nudges prepared. Run `make demo` again: nothing new is created.", highlight=False)
    _print_errors(delivery.errors)


def _print_errors(errors: list[str]) -> None:
    for line in errors:
        err.print(f"warning: {line}", highlight=False)


# -- sync and tick ------------------------------------------------------------------------------

@app.command()
def sync(as_json: JsonOption = False) -> None:
    """Pull what changed in the CRM into the local store."""
    with _errors():
        kizuna = _open(load_settings())
        result = _sync_with_progress(kizuna)
        data = {"source": kizuna.source, "counts": result.counts.as_dict(),
                "stats": dict(result.stats), "seconds": round(result.seconds, 2)}
        if as_json:
            out.print_json(json.dumps(data, default=str, ensure_ascii=False))
            return
        table = Table("stream", "upserted", "deleted", title=f"Sync from {kizuna.source}")
        kinds = sorted(set(result.counts.upserted) | set(result.counts.deleted))
        for kind in kinds:
            table.add_row(kind, str(result.counts.upserted.get(kind, 0)),
                          str(result.counts.deleted.get(kind, 0)))
        out.print(table)
        for key, value in result.stats.items():
            out.print(f"{key}: {value}", highlight=False)


def _sync_with_progress(kizuna: Kizuna) -> Any:
    """Run a sync, with a live record count per stream when stdout is a terminal."""
    if not out.is_terminal:
        return kizuna.sync()
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"),
                  TextColumn("{task.completed:,} records"), TimeElapsedColumn(),
                  console=out, transient=True) as progress:
        tasks: dict[str, Any] = {}

        def observe(batch: Any) -> None:
            if batch.stream not in tasks:
                tasks[batch.stream] = progress.add_task(f"pulling {batch.stream}", total=None)
            progress.advance(tasks[batch.stream], len(batch.records))

        return kizuna.sync(observe)


@app.command()
def tick(no_sync: Annotated[bool, typer.Option("--no-sync")] = False) -> None:
    """One full tick: sync, score, segment, evaluate and deliver."""
    with _errors():
        kizuna = _open(load_settings(), slack=True)
        report = kizuna.tick(sync=not no_sync)
        out.print(f"{report.decisions.accounts} accounts; {report.opened} plays opened, "
                  f"{report.closed} closed; {len(report.delivery.tasks)} tasks, "
                  f"{len(report.delivery.nudges)} nudges, {len(report.delivery.drafts)} drafts.",
                  highlight=False)
        _print_errors(report.delivery.errors)
        if report.delivery.errors:
            raise typer.Exit(1)


@app.command()
def check(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would fire; write nothing.")]
    = False,
    as_json: JsonOption = False,
    all_outcomes: Annotated[bool, typer.Option("--all", help="Also list skipped accounts.")]
    = False,
) -> None:
    """Evaluate every playbook against the local store (no CRM sync)."""
    with _errors():
        settings = load_settings()
        if dry_run:
            rules = Rules.load(settings)
            store = Store.open(settings.database_url, migrate=False)
            _require_schema(store)
            kizuna = Kizuna(settings, rules, store, _NameOnly(settings.crm))
            decisions = kizuna.decide()
            _print_decisions(decisions, _lang(settings), as_json, all_outcomes)
            return
        kizuna = _open(settings, slack=True)
        report = kizuna.apply(kizuna.decide())
        _print_decisions(report.decisions, _lang(settings), as_json, all_outcomes)


class _NameOnly:
    """Stands in for the connector during a dry run: only its name (the store's source) is used."""

    def __init__(self, name: str) -> None:
        self.name = name


def _require_schema(store: Store) -> None:
    if "plays" not in store.tables():
        raise ConfigError("the store is empty: run `kizuna sync` (or `kizuna demo`) first",
                          field="KIZUNA_DATABASE_URL")


def _print_decisions(d: Decisions, lang: str, as_json: bool, all_outcomes: bool) -> None:
    shown = [f for f in d.findings if all_outcomes or f.outcome != "skipped"]
    skipped: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for f in d.findings:
        if f.outcome == "skipped":
            skipped[f.playbook_id][", ".join(f.missing) or "unknown"] += 1
    if as_json:
        payload = {
            "date": d.today.isoformat(), "accounts": d.accounts,
            "summary": {o: d.count(o) for o in
                        ("open", "already_open", "cooldown", "limit", "close", "skipped")},
            "plays": [f.as_dict() for f in shown],
            "skipped": {pb: dict(v) for pb, v in skipped.items()},
        }
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2, default=str) + "\n")
        return
    table = Table("account", "owner", "playbook", "outcome", "why", title=f"Plays on {d.today}")
    for f in shown:
        table.add_row(f.account_name, f.owner_email or "—", f.playbook_id, f.outcome,
                      f.reason.get(lang, "") if f.reason else (
                          "missing: " + ", ".join(f.missing) if f.missing else ""))
    out.print(table)
    out.print(f"{d.accounts} accounts: {d.count('open')} would open, "
              f"{d.count('already_open')} already open, {d.count('cooldown')} in cooldown, "
              f"{d.count('close')} would close, {d.count('skipped')} skipped.", highlight=False)
    for pb, reasons in sorted(skipped.items()):
        for missing, n in reasons.items():
            out.print(f"  {pb}: skipped {n} accounts (missing {missing})", highlight=False)


# -- accounts -----------------------------------------------------------------------------------

@app.command()
def account(query: Annotated[str, typer.Argument(help="Part of a company name, or its CRM id.")],
            as_json: JsonOption = False) -> None:
    """Show an account's card: health and why, portfolio cell, owner, last touch, open plays."""
    with _errors():
        settings = load_settings()
        rules = Rules.load(settings)
        store = Store.open(settings.database_url, migrate=False)
        _require_schema(store)
        kizuna = Kizuna(settings, rules, store, _NameOnly(settings.crm))
        matches = kizuna.find_accounts(query)
        if not matches:
            if as_json:
                sys.stdout.write(json.dumps({"query": query, "matches": []}) + "\n")
            else:
                err.print(f"No account matches {query!r}. Try part of the name (ひらがな/カタカナ, "
                          "case and full-width letters are all fine) or the CRM id.",
                          highlight=False)
            raise typer.Exit(1)
        lang = _lang(settings)
        if len(matches) > 1 and _folded(matches[0].name) != _folded(query):
            if as_json:
                sys.stdout.write(json.dumps({"query": query, "matches": [
                    {"id": a.crm_id, "name": a.name} for a in matches]}, ensure_ascii=False)
                    + "\n")
                return
            out.print(f"{len(matches)} accounts match {query!r}:", highlight=False)
            for a in matches:
                out.print(f"  {a.crm_id}  {a.name}", highlight=False)
            out.print("Run again with more of the name or the id.", highlight=False)
            return
        card = kizuna.card(matches[0]).as_dict(lang)
        if as_json:
            sys.stdout.write(json.dumps(card, ensure_ascii=False, indent=2, default=str) + "\n")
            return
        _print_card(card, kizuna, lang)


def _folded(text: str) -> str:
    from core.text import search_key
    return search_key(text)


def _print_card(card: dict[str, Any], kizuna: Kizuna, lang: str) -> None:
    health = card["health"] or {}
    csm = kizuna.csm(card["owner"])
    lines = [
        f"Owner: {csm['name_en' if lang == 'en' else 'name_ja']} <{card['owner']}>",
        f"Health: {health.get('score', '—')} ({health.get('band') or 'unknown'})"
        + (f" — pulled down by {', '.join(health['pulled_down_by'])}"
           if health.get("pulled_down_by") else "")
        + (f"; not scored: {', '.join(health['missing'])}" if health.get("missing") else ""),
    ]
    for m in health.get("measures", []):
        lines.append(f"   {m['id']}: value {m['value']} → {m['score']} (weight {m['weight']})")
    p = card["portfolio"] or {}
    lines += [
        f"Portfolio: {p.get('cell')} → {p.get('touch')}, cadence {p.get('cadence_days')} days",
        f"Usage (30 days): {card['usage_30d'] if card['usage_30d'] is not None else 'no data'}",
        f"Last touch: {card['last_touch'] or 'none on record'}",
        f"Renewal: {card['renewal_date'] or '—'}   ARR: {card['arr'] or '—'}",
        "Open plays:" if card["open_plays"] else "Open plays: none",
    ]
    lines += [f"   {op['due_on']}  {op['title']} ({op['state']})" for op in card["open_plays"]]
    if card["recent_activity"]:
        lines.append("Recent activity:")
        lines += [f"   {r['at'][:10]}  {r['kind']}: {r['subject'] or ''}"
                  for r in card["recent_activity"]]
    out.print(Panel("\n".join(lines), title=f"{card['name']} ({card['id']})", expand=False),
              highlight=False)


# -- playbooks ---------------------------------------------------------------------------------

@playbooks_app.command("validate")
def playbooks_validate(
    path: Annotated[Path | None, typer.Argument(help="A playbook file or folder.")] = None,
) -> None:
    """Validate playbooks (all configured ones, or PATH) and the templates they use."""
    with _errors():
        settings = load_settings()
        if path is not None:
            from core.render import Renderer
            from playbooks.catalog import load_file, load_playbooks
            renderer = Renderer()
            if path.is_dir():
                loaded = load_playbooks(renderer, path, include_builtin=False,
                                        cells=list(settings.config.portfolio.cells))
            elif path.is_file():
                loaded = [load_file(path, renderer)]
            else:
                raise ConfigError("no such file or folder", file=str(path))
        else:
            loaded = list(Rules.load(settings).playbooks.values())
        for pb in loaded:
            out.print(f"ok  {pb.id:28} {pb.file}", highlight=False)
        out.print(f"{len(loaded)} playbooks valid.", highlight=False)


@playbooks_app.command("list")
def playbooks_list() -> None:
    """List the enabled playbooks with what they look at."""
    with _errors():
        settings = load_settings()
        rules = Rules.load(settings)
        lang = _lang(settings)
        table = Table("id", "title", "applies to", "severity", "due", "cooldown")
        for pb in rules.playbooks.values():
            s = pb.spec
            scope = ", ".join(s.applies_to.touch or []) or ", ".join(s.applies_to.cells or []) \
                or "all"
            table.add_row(pb.id, s.title.get(lang), scope, str(s.severity), f"{s.due_in_days}d",
                          f"{s.cooldown_days}d")
        out.print(table)


@app.command()
def serve(
    http: Annotated[bool, typer.Option("--http", help="Slack over HTTP (/slack/events) "
                                       "instead of Socket Mode.")] = False,
    port: Annotated[int, typer.Option(help="Port for /healthz (and /slack/events).")] = 8080,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "0.0.0.0",
    no_slack: Annotated[bool, typer.Option("--no-slack", help="Run the scheduler without "
                                           "Slack (nudges stay pending).")] = False,
) -> None:
    """Run the Slack bot and the scheduler until SIGTERM (see README "Deploying")."""
    with _errors():
        from core.serve import Service

        Service(load_settings(), http=http, port=port, host=host, slack=not no_slack).run()


@app.command()
def status(as_json: JsonOption = False) -> None:
    """Last syncs, next scheduled runs, plays per state, the scheduler's leader, data guard."""
    with _errors():
        settings = load_settings()
        store = Store.open(settings.database_url)
        data = _status(settings, store)
        if as_json:
            sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
            return
        out.print(f"CRM: {data['source']}   store: {data['store']}", highlight=False)
        sync_run = data["last_sync"]
        out.print("Last sync: " + (f"{sync_run['status']} at {sync_run['finished_at']} "
                                   f"({sync_run['api_calls']} API calls)"
                                   if sync_run else "never"), highlight=False)
        leader = data["leader"]
        out.print("Scheduler leader: " + (f"{leader['holder']} (lease until "
                                          f"{leader['expires_at']})" if leader else "none"),
                  highlight=False)
        out.print("Data guard: " + data["data_guard"], highlight=False)
        table = Table("job", "last run", "status", "next run", title="Schedule")
        for name, job in data["jobs"].items():
            table.add_row(name, str(job.get("finished_at") or "—"), job.get("status") or "—",
                          str(job["next_run"]))
        out.print(table)
        out.print("Plays: " + (", ".join(f"{k} {v}" for k, v in sorted(data["plays"].items()))
                               or "none"), highlight=False)


def _status(settings: Settings, store: Store) -> dict[str, Any]:
    from datetime import UTC, datetime

    from core.guard import DataGuard
    from core.leader import Lease
    from core.ledger import Ledger
    from core.migrations import current
    from scheduler import Job, JobRunner, ScheduleSettings

    source = settings.crm
    schedule = settings.section("scheduler", ScheduleSettings)
    now = datetime.now(settings.tz)
    runs = JobRunner(store, Lease(store)).runs()
    jobs = {}
    for name in ("sync", "evaluate", "daily_digest", "weekly_digest"):
        trigger = Job(name, getattr(schedule, name), lambda: None).trigger(settings.tz)
        jobs[name] = {**{k: runs.get(name, {}).get(k) for k in ("status", "finished_at")},
                      "next_run": trigger.get_next_fire_time(None, now)}
    lease = Lease(store).current()
    guard = DataGuard(store, source).state()
    return {
        "source": source, "store": f"revision {current(store.engine)}",
        "last_sync": store.last_sync(source),
        "leader": ({"holder": lease[0], "expires_at": lease[1],
                    "live": lease[1] > datetime.now(UTC)} if lease else None),
        "data_guard": f"holding since {guard['since']}: {guard['reason']}"
                      if guard and guard["held"] else "ok",
        "jobs": jobs, "plays": Ledger(store).counts(source),
    }


@app.command()
def migrate() -> None:
    """Create or upgrade the store's schema (also done automatically on start)."""
    with _errors():
        settings = load_settings()
        store = Store.open(settings.database_url)
        from core.migrations import current
        out.print(f"store at revision {current(store.engine)}", highlight=False)


# -- Slack bot ----------------------------------------------------------------------------------

@app.command("bot")
def bot_command(
    http: Annotated[bool, typer.Option("--http", help="Serve HTTP on /slack/events instead of "
                                       "Socket Mode.")] = False,
    port: Annotated[int, typer.Option(help="Port for --http.")] = 3000,
    check_only: Annotated[bool, typer.Option("--check", help="Check the Slack token and scopes "
                                             "and list undelivered messages; do not serve.")]
    = False,
) -> None:
    """Run the Slack bot: Socket Mode (SLACK_APP_TOKEN) by default, or HTTP with --http."""
    with _errors():
        from bot.app import check as check_slack
        from bot.app import run

        settings = load_settings()
        if check_only:
            for line in check_slack(settings):
                out.print(line, highlight=False)
            return
        run(settings, http=http, port=port)


def main(argv: list[str] | None = None) -> None:
    command: Callable[..., Any] = typer.main.get_command(app)
    command.main(args=argv, prog_name="kizuna")


if __name__ == "__main__":
    main()
