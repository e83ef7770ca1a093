"""``demo init|feed``: the demo shop in an SQLite file (for a newcomer without MySQL)."""
from __future__ import annotations

import time
from pathlib import Path

import click

from worker.cli.options import opt
from worker.defaults import DEMO_FEED_SECONDS, DEMO_SALES


@click.group()
def demo() -> None:
    """The demo shop: an SQLite file with the reference schema and realistic payments."""


@demo.command("init")
@click.argument("path", type=click.Path(dir_okay=False))
@opt("--sales", type=int, default=DEMO_SALES, help="how many sales to create (a refund is added too)")
@opt("--overwrite", is_flag=True, help="replace an existing file")
def demo_init(path: str, sales: int, overwrite: bool) -> None:
    """Create the demo shop file."""
    from worker.demo import create_demo_shop

    create_demo_shop(Path(path), sales, overwrite=overwrite)
    click.echo(f"demo shop with {sales} sales and a refund written to {path}")


@demo.command("feed")
@click.argument("path", type=click.Path(dir_okay=False, exists=True))
@opt("--every", type=float, default=DEMO_FEED_SECONDS, help="seconds between new payments")
@opt("--count", type=int, default=0, help="stop after this many (0: until stopped)")
def demo_feed(path: str, every: float, count: int) -> None:
    """Add a new demo sale every few seconds, like a shop taking orders."""
    from worker.demo import add_demo_payment

    n = 0
    while count == 0 or n < count:
        time.sleep(every)
        add_demo_payment(Path(path))
        n += 1
