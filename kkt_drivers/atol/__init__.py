"""ATOL registers through Driver v10 JSON tasks: Web Requests (HTTP) or libfptr10, plus an emulator."""
