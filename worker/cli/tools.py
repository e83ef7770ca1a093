"""``drivers`` and ``preview``: what the worker can drive, and what it would print — touching nothing."""
from __future__ import annotations

import importlib
import json
from importlib.metadata import entry_points
from typing import Any

import click

from kkt_drivers import receipt_json
from kkt_drivers.emulators import EMULATORS
from kkt_drivers.registry import BUILTIN_DRIVERS, ENTRY_POINT_GROUP
from worker import app
from worker.cli.options import Ctx, opt, pass_ctx


#: the driver capabilities (kkt_drivers.base.CAPABILITY_FLAGS) as ``drivers`` prints them
CAPABILITIES = {"reads_documents": "documents", "lookup_by_key": "key-lookup", "reads_counters": "counters",
                "supports_marking": "marking"}


def capabilities(scheme: str, target: str) -> dict[str, Any]:
    """What the driver class behind *target* (``module:Class``) can do with a *scheme* URL; ``error`` when
    it does not import."""
    module_name, _, cls_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
        return dict(cls.capabilities(scheme))
    except Exception as exc:   # an installed package may be broken (or predate the method): say so
        return {"error": f"{type(exc).__name__}: {exc}"}


@click.command()
@opt("--output", type=click.Choice(["text", "json"]), default="text", help="output format")
def drivers(output: str) -> None:
    """Built-in and installed register drivers, their URL schemes, what each can do, and the emulators."""
    rows = [{"scheme": scheme, "target": target, "source": "built-in"} for scheme, target in BUILTIN_DRIVERS.items()]
    rows += [{"scheme": ep.name, "target": ep.value, "source": f"installed ({ep.dist.name if ep.dist else '?'})"}
             for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in BUILTIN_DRIVERS]
    for r in rows:
        r["capabilities"] = capabilities(r["scheme"], r["target"])
    emulators = sorted(EMULATORS)
    if output == "json":
        click.echo(json.dumps({"drivers": rows, "emulators": emulators}, indent=2))
        return
    for r in rows:
        caps = r["capabilities"]
        can = (f"cannot load: {caps['error']}" if "error" in caps
               else " ".join(name for flag, name in CAPABILITIES.items() if caps[flag]) or "-")
        click.echo(f"{r['scheme'] + '://…':<22} {r['target']:<52} {r['source']:<12} {can}")
    click.echo("emulators (kkt-worker emulator serve NAME STATE_DIR): " + ", ".join(emulators))


@click.command()
@click.argument("payment_id", type=int)
@opt("--output", type=click.Choice(["text", "json"]), default="text", help="output format")
@pass_ctx
def preview(c: Ctx, payment_id: int, output: str) -> None:
    """Build the receipt(s) for shop row PAYMENT_ID as the worker would, without a register or a ledger write."""
    src = app.open_shop_source(c.settings)
    try:
        found = src.fetch_by_ids([payment_id])
        if not found:
            raise click.ClickException(f"payment {payment_id} is not in the shop's table")
        planner = app.build_planner(c.settings, c.reader, src)
        planned = planner.plan(found[0])
    finally:
        src.close()
    out = [{"stage": str(p.stage), "part": p.part, "tag": p.tag, "error": p.error,
            "receipt": receipt_json.receipt_to_dict(p.receipt) if p.receipt else None} for p in planned]
    if output == "json":
        click.echo(json.dumps(out, ensure_ascii=False, indent=2, default=str))
        return
    for p in planned:
        if p.receipt is None:
            click.echo(f"{p.tag} ({p.stage} part {p.part}): REJECTED — {p.error}")
            continue
        r = p.receipt
        click.echo(f"{p.tag} ({p.stage} part {p.part}): operation {int(r.operation)} ({r.operation.name}), "
                   f"tax system {r.tax_system.name}, total {r.total}")
        for i, item in enumerate(r.items, 1):
            click.echo(f"  {i}. {item.name}: {item.quantity} × {item.price} = {item.amount}, {item.vat.value}, "
                       f"1214={int(item.payment_method)}, 1212={int(item.payment_subject)}")
        click.echo("  payments: " + ", ".join(f"{pay.type.value} {pay.amount}" for pay in r.payments))
        if p.error:
            click.echo(f"  note: {p.error}")
