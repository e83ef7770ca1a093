#!/usr/bin/env bash
# kkt-worker set-up in one command (a fresh machine with Python 3.11+ needs nothing else):
#
#   ./start.sh          set up, then run the worker on the embedded demo: a demo shop (SQLite file with the
#                       reference schema), the SQLite ledger and the built-in emulated register, all in ./var.
#                       It fiscalizes the demo payments, lists the receipts, then keeps running while a new
#                       demo payment arrives every few seconds. Ctrl-C stops it (DEMO_SECONDS=N stops after N s).
#   ./start.sh test     install what the tests need and run the whole suite (MariaDB and PostgreSQL tests
#                       included; with CI=true a missing server fails the run instead of skipping).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=.venv

venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".$1"
}

# The test suite needs the real servers; start them if this machine has them installed but stopped.
ensure_services() {
    if ! "$VENV/bin/python" -c "import socket; socket.create_connection(('127.0.0.1', 3306), 2)" 2>/dev/null \
        && [ -x /usr/sbin/mariadbd ] && command -v start-stop-daemon >/dev/null; then
        echo "starting MariaDB"
        start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
        sleep 3
    fi
    if ! "$VENV/bin/python" -c "import socket; socket.create_connection(('127.0.0.1', 5432), 2)" 2>/dev/null \
        && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
        echo "starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
        sleep 2
    fi
}

# The web page tests drive Debian's headless Chromium; install it where this machine lets us (root + apt).
ensure_browser() {
    if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "installing chromium and chromium-driver (Debian packages) for the web page tests"
            apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                chromium chromium-driver >/dev/null || echo "could not install chromium; web page tests will say so"
        fi
    fi
}

case "${1:-demo}" in
    demo)
        venv ""
        mkdir -p var
        KKT=("$VENV/bin/kkt-worker" -c settings.yaml)
        [ -f var/demo-shop.db ] || "${KKT[@]}" demo init var/demo-shop.db
        "${KKT[@]}" migrate
        "${KKT[@]}" check || true
        "${KKT[@]}" run --burst
        "${KKT[@]}" ledger list --limit 30
        echo
        echo "Now running live: a new demo payment arrives every 3 s (Ctrl-C to stop)."
        "${KKT[@]}" demo feed var/demo-shop.db --every 3 &
        feeder=$!
        trap 'kill $feeder 2>/dev/null || true' EXIT
        if [ -n "${DEMO_SECONDS:-}" ]; then
            timeout --signal=TERM "$DEMO_SECONDS" "${KKT[@]}" run || true
            "${KKT[@]}" status
        else
            "${KKT[@]}" run
        fi
        ;;
    test)
        venv "[test]"
        ensure_services
        ensure_browser
        shift || true
        # the suite is mostly waiting on real servers and subprocesses: three pytest workers on two
        # cores finish it in about a third of the time (pytest-xdist; pass -n 0 to run it serially)
        exec "$VENV/bin/python" -m pytest -p no:cacheprovider -n "${KKT_TEST_WORKERS:-3}" "$@"
        ;;
    *)
        echo "usage: ./start.sh [demo|test [pytest args]]" >&2
        exit 2
        ;;
esac
