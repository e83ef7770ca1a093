"""KKMServer (kkmserver.ru): an HTTP JSON API in front of a pool of registers.

``commands`` maps receipts to commands and answers to documents (pure), ``driver`` talks HTTP,
``emulation`` executes commands on the shared register model, ``server`` is the HTTP emulator.
"""
