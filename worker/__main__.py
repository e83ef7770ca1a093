"""``python -m worker`` = ``kkt-worker``."""
from worker.cli.main import main

main()
