"""The ``kkt-worker`` command line: one module per command group, assembled in :mod:`worker.cli.main`.

``options`` holds what they share (the context, options with their env vars); every command only
parses, calls the worker's parts (built by :mod:`worker.app`) and prints.
"""
