"""kkt-worker: polls a shop's paid orders and fiscalizes each exactly once (54-FZ)."""
__version__ = "0.1.0"
