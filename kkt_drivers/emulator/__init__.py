"""The emulated register: one model (:mod:`.model`) behind the in-process driver and wire servers."""
