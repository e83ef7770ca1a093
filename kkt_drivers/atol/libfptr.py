"""Transport 2: ATOL's libfptr10 on this host, ``processJson`` through ctypes (same JSON tasks).

Calls used (the C API of libfptr10, as every binding declares it — the official Python
``libfptr10.py``, Qt/C++ and Node wrappers)::

    int  libfptr_create(libfptr_handle *handle);
    void libfptr_destroy(libfptr_handle *handle);
    int  libfptr_set_single_setting(libfptr_handle, const wchar_t *key, const wchar_t *value);
    int  libfptr_apply_single_settings(libfptr_handle);
    int  libfptr_open(libfptr_handle);
    int  libfptr_close(libfptr_handle);
    void libfptr_set_param_str(libfptr_handle, int param_id, const wchar_t *value);
    int  libfptr_process_json(libfptr_handle);
    int  libfptr_get_param_str(libfptr_handle, int param_id, wchar_t *buf, int size);  /* → needed size */
    int  libfptr_error_code(libfptr_handle);
    int  libfptr_error_description(libfptr_handle, wchar_t *buf, int size);         /* → needed size */

Unlike Web Requests there is no service holding our uuid, so this transport keeps no keys: the
worker reconciles by reading documents back (``getFnDocument``). A fiscal task failing with a
link/FN code (:data:`~kkt_drivers.atol.codes.UNCERTAIN_CODES`) is "outcome unknown", because no
service re-read the FD counter for us. Verified only against a fake library built in the tests;
see docs/atol.md.
"""
from __future__ import annotations

import ctypes
import threading
from typing import Any

from kkt_drivers.atol import codes as c
from kkt_drivers.atol import tasks as t
from kkt_drivers.errors import DriverConfigError, OutcomeUnknownError, TransientError

#: LIBFPTR_PARAM_JSON_DATA (libfptr10 constants)
PARAM_JSON_DATA = 65645
LIBFPTR_OK = 0
_INITIAL_BUFFER = 4096


class LibFptrTransport:
    """A libfptr10 handle opened with *settings* (``Model``, ``Port``, ``IPAddress`` …)."""

    keeps_keys = False

    def __init__(self, library: str, settings: dict[str, str]) -> None:
        self.library_path = library
        self.settings = settings
        self._lib: ctypes.CDLL | None = None
        self._handle = ctypes.c_void_p()
        self._opened = False
        self._lock = threading.Lock()  # a driver handle must never be called in parallel

    def _load(self) -> ctypes.CDLL:
        if self._lib is None:
            try:
                lib = ctypes.CDLL(self.library_path)
            except OSError as exc:
                raise DriverConfigError(f"cannot load libfptr10 from {self.library_path!r}: {exc}") from exc
            h, w, i = ctypes.c_void_p, ctypes.c_wchar_p, ctypes.c_int
            for name, res, args in (
                ("libfptr_create", i, [ctypes.POINTER(h)]), ("libfptr_destroy", None, [ctypes.POINTER(h)]),
                ("libfptr_set_single_setting", i, [h, w, w]), ("libfptr_apply_single_settings", i, [h]),
                ("libfptr_open", i, [h]), ("libfptr_close", i, [h]),
                ("libfptr_set_param_str", None, [h, i, w]), ("libfptr_process_json", i, [h]),
                ("libfptr_get_param_str", i, [h, i, w, i]), ("libfptr_error_code", i, [h]),
                ("libfptr_error_description", i, [h, w, i]),
            ):
                try:
                    fn = getattr(lib, name)
                except AttributeError as exc:
                    raise DriverConfigError(f"{self.library_path!r} has no {name}: not libfptr10?") from exc
                fn.restype, fn.argtypes = res, args
            self._lib = lib
        return self._lib

    def _string(self, getter: Any, *args: Any) -> str:
        size = _INITIAL_BUFFER
        while True:
            buf = ctypes.create_unicode_buffer(size)
            need = getter(self._handle, *args, buf, size)
            if need <= size:
                return buf.value
            size = need

    def _error(self) -> tuple[int, str]:
        lib = self._load()
        return int(lib.libfptr_error_code(self._handle)), self._string(lib.libfptr_error_description)

    def open(self) -> None:
        """Create the handle, apply the settings, open the connection (idempotent)."""
        with self._lock:
            if self._opened:
                return
            lib = self._load()
            if not self._handle.value:
                if lib.libfptr_create(ctypes.byref(self._handle)) != LIBFPTR_OK or not self._handle.value:
                    raise DriverConfigError("libfptr_create failed")
                for key, value in self.settings.items():
                    lib.libfptr_set_single_setting(self._handle, key, value)
                if lib.libfptr_apply_single_settings(self._handle) != LIBFPTR_OK:
                    code, desc = self._error()
                    raise DriverConfigError(f"libfptr10 refused the settings: {code} {desc}",
                                            vendor_code=c.vendor(code, desc))
            if lib.libfptr_open(self._handle) != LIBFPTR_OK:
                code, desc = self._error()
                raise TransientError(f"libfptr10 cannot open the register: {code} {desc}",
                                     vendor_code=c.vendor(code, desc))
            self._opened = True

    def close(self) -> None:
        """Close the connection and destroy the handle; never raises."""
        with self._lock:
            if self._lib is None or not self._handle.value:
                return
            try:
                if self._opened:
                    self._lib.libfptr_close(self._handle)
                self._lib.libfptr_destroy(ctypes.byref(self._handle))
            finally:
                self._opened = False
                self._handle = ctypes.c_void_p()

    def process(self, task: dict[str, Any], *, fiscal: bool) -> dict[str, Any]:
        """``processJson`` one task; its result, or the classified error."""
        self.open()
        lib = self._load()
        with self._lock:
            lib.libfptr_set_param_str(self._handle, PARAM_JSON_DATA, t.dumps(task))
            rc = lib.libfptr_process_json(self._handle)
            if rc != LIBFPTR_OK:
                code, desc = self._error()
                if fiscal and code in c.UNCERTAIN_CODES:
                    raise OutcomeUnknownError(f"libfptr10 {task['type']} failed with {code} {desc}; "
                                              "the document may exist", vendor_code=c.vendor(code, desc))
                raise c.error_for(code, desc, task=task["type"])
            raw = self._string(lib.libfptr_get_param_str, PARAM_JSON_DATA)
        if not raw.strip():
            return {}
        try:
            out = t.loads(raw)
        except ValueError as exc:
            what = f"libfptr10 answered {task['type']} with something that is not JSON: {raw[:120]!r}"
            raise (OutcomeUnknownError(what) if fiscal else TransientError(what)) from exc
        if not isinstance(out, dict):
            raise (OutcomeUnknownError if fiscal else TransientError)(f"libfptr10 answer is not an object: {raw[:120]!r}")
        return out
