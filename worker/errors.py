"""The worker's exception root and its families (drivers have their own, in kkt_drivers.errors)."""
from __future__ import annotations


class WorkerError(Exception):
    """Root of every error the worker raises on purpose."""


class ConfigError(WorkerError):
    """settings.yaml or the environment is wrong; the message names the key."""


class LockHeld(ConfigError):
    """Another worker (or admin command) holds the ledger's run lock or a register's lease: try later."""


class SourceError(WorkerError):
    """Reading the shop's database failed."""


class SourceUnavailable(SourceError):
    """The shop's database cannot be reached now (network, restart, timeout): retry with backoff."""


class SourceConfigError(SourceError, ConfigError):
    """The shop's database refuses us (grants, unknown table or column): an admin must act."""


class LedgerError(WorkerError):
    """The ledger refused a change."""


class StateConflict(LedgerError):
    """A compare-and-set state change found the row in another state (someone else moved it)."""


class LeaseLost(LedgerError):
    """This process's lease on a register was taken over (its epoch is stale): it must not write or send."""


class LeaseHeld(LockHeld):
    """Another live holder has the register's lease; the message names it and when it expires."""

    def __init__(self, register: str, holder: str, epoch: int, expires_at: object) -> None:
        super().__init__(f"register {register} is held by {holder} (epoch {epoch}) until {expires_at} UTC; "
                         "stop that worker or command first (or wait for its lease to expire)")
        self.register = register
        self.holder = holder
        self.epoch = epoch


class IngestProcessLost(WorkerError):
    """The worker's ingest process exited under it (killed, out of memory): started again, with backoff."""
