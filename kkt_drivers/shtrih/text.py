"""Text the register can print: our one decision for characters its code pages lack.

Command text (FF46 names, FF45 text) is CP1251 and TLV strings are CP866 (reference addendum
"Text"). A character outside the code page cannot be printed or stored. We never let it become a
silent ``?``: typographic symbols with an obvious plain form are transliterated by the table below
(``50×90`` → ``50x90``, «ёлка» → "ёлка"), and anything else is refused with a RejectedError that
names the field, so the shop fixes the name instead of a customer getting a garbled receipt.
See ``docs/shtrih.md`` for the argument.
"""
from __future__ import annotations

from kkt_drivers.errors import RejectedError

#: known symbols → their plain form; applied only where the target code page lacks the symbol
TRANSLITERATION: dict[str, str] = {
    "×": "x", "÷": "/", "−": "-", "–": "-", "—": "-", "‑": "-", "‒": "-",
    "«": '"', "»": '"', "„": '"', "“": '"', "”": '"', "‘": "'", "’": "'", "‚": ",",
    "…": "...", "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u2007": " ",
    "•": "*", "·": ".", "°": " град.", "±": "+/-", "€": "EUR", "₽": "руб.", "№": "N",
    "™": "(TM)", "®": "(R)", "©": "(C)", "½": "1/2", "¼": "1/4", "¾": "3/4",
    "²": "2", "³": "3", "µ": "мк", "\t": " ",
}


def fit(value: str, encoding: str, field: str) -> str:
    """*value* with every character representable in *encoding*; RejectedError names *field*.

    Characters the code page has are kept as they are (``№`` stays on CP1251 and CP866);
    characters from :data:`TRANSLITERATION` that it lacks are replaced; any other is refused.
    """
    out: list[str] = []
    for ch in value:
        if _encodable(ch, encoding):
            out.append(ch)
            continue
        plain = TRANSLITERATION.get(ch)
        if plain is not None and _encodable(plain, encoding):
            out.append(plain)
            continue
        raise RejectedError(
            f"{field}: character {ch!r} (U+{ord(ch):04X}) cannot be printed by the register "
            f"({encoding}) and has no agreed replacement", field=field)
    return "".join(out)


def _encodable(s: str, encoding: str) -> bool:
    try:
        s.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True
