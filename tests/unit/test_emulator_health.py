"""The emulated register reports what health needs: FN validity, OFD backlog, its own clock."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from kkt_drivers.emulator.model import RegisterModel


def test_ofd_backlog_grows_while_the_link_is_down_and_clears_when_it_returns(tmp_path: Path) -> None:
    reg = RegisterModel(tmp_path, fsync=False)
    reg.open_shift()
    st = reg.status()
    assert st.unsent_documents == 0 and st.ofd_oldest_unsent_at is None
    reg.ofd_link(up=False)
    reg.close_shift()
    reg.open_shift()
    st = reg.status()
    assert st.unsent_documents == 2 and st.ofd_oldest_unsent_at is not None
    assert st.ofd_oldest_unsent_at == dt.datetime.fromisoformat(reg.document(2)["dt"])
    reg.ofd_link(up=True)
    assert reg.status().unsent_documents == 0


def test_fn_validity_defaults_to_15_months_and_can_be_set(tmp_path: Path) -> None:
    reg = RegisterModel(tmp_path, fsync=False)
    st = reg.status()
    assert st.register_time is not None
    assert dt.timedelta(days=450) < st.fn_valid_until - st.register_time.date() < dt.timedelta(days=460)
    reg.set_fn_valid_until(dt.date(2026, 12, 20))
    assert RegisterModel(tmp_path, fsync=False).status().fn_valid_until == dt.date(2026, 12, 20)
