"""``python -m worker`` = ``kkt-worker``."""
from worker.cli import main

main()
