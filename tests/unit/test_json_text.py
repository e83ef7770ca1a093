"""kkt_drivers.json_text: orjson's text for the hot paths, the standard library's where orjson refuses a value."""
from __future__ import annotations

import json

from kkt_drivers import json_text


def test_the_text_reads_back_as_the_standard_librarys_with_non_ascii_kept() -> None:
    """Given nested values with Cyrillic, None, booleans and a tuple, when written, then the standard library
    reads back what it would have written itself, and the Cyrillic is in the text as is (not \\u escapes)."""
    value = {"name": "Книга", "items": ({"price": "450.00", "qty": 2},), "ok": True, "none": None}
    text = json_text.dumps(value)
    assert json.loads(text) == json.loads(json.dumps(value, ensure_ascii=False))
    assert "Книга" in text


def test_sorted_keys_at_every_level_and_integer_keys_as_strings() -> None:
    """Given keys out of order and an integer key (a register's requisite numbers), when written with sorted
    keys, then every level is sorted and the integer key is written as a string."""
    value = {"b": 1, "a": {"z": 1, 1192: "tag", "m": 2}}
    text = json_text.dumps(value, sort_keys=True)
    as_strings = {"b": 1, "a": {"z": 1, "1192": "tag", "m": 2}}
    assert text == json.dumps(as_strings, sort_keys=True, separators=(",", ":"))
    assert list(json.loads(text)) == ["a", "b"] and list(json.loads(text)["a"]) == ["1192", "m", "z"]


def test_an_integer_beyond_64_bits_is_written_by_the_standard_library() -> None:
    """Given an integer orjson refuses (beyond 64 bits: a shop column may hold one), when written, then the
    text is the standard library's and reads back exactly."""
    value = {"order": 2 ** 70, "name": "Книга"}
    text = json_text.dumps(value)
    assert json.loads(text) == value and "Книга" in text
    assert json_text.loads(json_text.dumps({"n": 2 ** 63 - 1})) == {"n": 2 ** 63 - 1}
