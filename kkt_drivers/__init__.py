"""kkt_drivers — cash-register (ККТ) drivers for 54-FZ receipts.

A small library that knows nothing about the worker: a pure receipt model (:mod:`.receipt`),
the narrow driver interface (:mod:`.base`), errors classified by how a caller must react
(:mod:`.errors`), drivers chosen by URL scheme (:mod:`.registry`), and an emulated register
(:mod:`.emulator`) whose fiscal storage survives a killed process.
"""
from kkt_drivers.registry import open_driver

__all__ = ["open_driver"]
