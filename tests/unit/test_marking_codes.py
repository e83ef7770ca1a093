"""kkt_drivers.marking: generated GS1 codes round-trip; garbage raises only MarkingCodeError with a field."""
from __future__ import annotations

import base64
import zlib

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kkt_drivers import marking as mk
from kkt_drivers.errors import RejectedError

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: printable ASCII without space (GS1 character set 82 is a subset; ЧЗ tails use + / =)
CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x7E)

#: a real-shaped milk code (GTIN, serial 6, 93 check code) and a shoe code with 91/92 (44)
MILK = b"0104650194496163215'oQ5YJ\x1d93dGVz"
CRYPTO44 = "A" * 10 + "b/+=" * 8 + "Z" * 2
SHOE = mk.build_gs1("04603988000001", "5Jr7Ypq2Z1X9A", key_id="EE10", crypto=CRYPTO44)
#: the 29-character tobacco code from the Shtrih golden FF61 trace (marking.md §3)
TOBACCO = b"04606203103348a3=EfODAB=UpGbL"


def test_milk_code_with_check_code_93():
    c = mk.parse(MILK)
    assert (c.gtin, c.serial, c.check_code, c.kind) == ("04650194496163", "5'oQ5YJ", "dGVz", mk.CodeKind.GS1)
    assert not c.has_crypto_tail
    assert c.code_type is mk.CodeType.CHECK_4
    assert c.tag_2000 == MILK


def test_code_with_91_92_has_crypto_tail():
    c = mk.parse(SHOE)
    assert c.has_crypto_tail and c.key_id == "EE10" and c.crypto == CRYPTO44
    assert c.code_type is mk.CodeType.CHECK_44_FN
    assert c.product_code_1163 == (1305, "010460398800000121" + "5Jr7Ypq2Z1X9A")


def test_tobacco_29_is_a_short_code():
    c = mk.parse(TOBACCO)
    assert c.kind is mk.CodeKind.TOBACCO_SHORT and c.gtin == "04606203103348"
    assert c.code_type is mk.CodeType.SHORT  # the golden FF61 answer says 2100 = 1


def test_control_code_2115_is_last_four_digits_of_crc32():
    assert mk.parse(MILK).control_code_2115 == str(zlib.crc32(MILK)).rjust(4, "0")[-4:]


@pytest.mark.parametrize("given_, hint", [
    (b"(01)04650194496163(21)5'oQ5YJ(93)dGVz", "human-readable"),
    (b"0104650194496163215'oQ5YJ\\u001d93dGVz", "text"),
    (b"0104650194496163215'oQ5YJ<GS>93dGVz", "text"),
    (b"0104650194496163215'oQ5YJ93dGVz0000000000", "GS separator"),
    (b"4650194496163", "AI 01"),
    (b"0104650194496163\x1d93dGVz", "followed by AI 21"),
    (b"0104650194496163215'oQ5YJ\x1d91EE10", "come together"),
    (b"", "empty"),
])
def test_refused_forms_name_the_problem(given_, hint):
    with pytest.raises(mk.MarkingCodeError, match=hint) as ei:
        mk.parse(given_, field="payment_items[2].marking_codes[0]")
    assert ei.value.field == "payment_items[2].marking_codes[0]"
    assert isinstance(ei.value, RejectedError)


def test_from_storage_auto_tells_raw_from_base64():
    b64 = base64.b64encode(MILK).decode()
    assert b64.startswith("MDE")
    assert mk.from_storage(b64).raw == MILK
    assert mk.from_storage(MILK).raw == MILK
    assert mk.from_storage(MILK.decode("ascii"), encoding="raw").raw == MILK
    with pytest.raises(mk.MarkingCodeError, match="base64"):
        mk.from_storage("M!!!", encoding="base64")


@st.composite
def gs1_codes(draw):
    gtin = draw(st.text(alphabet="0123456789", min_size=14, max_size=14))
    serial = draw(st.text(alphabet=CHARS, min_size=1, max_size=20))
    tail = draw(st.sampled_from(["crypto44", "crypto88", "check", "none"]))
    kw: dict = {}
    if tail.startswith("crypto"):
        kw["key_id"] = draw(st.text(alphabet=CHARS, min_size=4, max_size=4))
        kw["crypto"] = draw(st.text(alphabet=CHARS, min_size=int(tail[6:]), max_size=int(tail[6:])))
    elif tail == "check":
        kw["check_code"] = draw(st.text(alphabet=CHARS, min_size=4, max_size=4))
    extra = draw(st.sampled_from([(), (("3103", "000500"),), (("8005", "012345"),)]))
    return (gtin, serial, kw, extra)


@FAST
@given(gs1_codes())
def test_generated_gs1_codes_round_trip(parts):
    gtin, serial, kw, extra = parts
    raw = mk.build_gs1(gtin, serial, extra=extra, **kw)
    # a code holding the text "[GS]", "<GS>"… is refused on purpose (a GS written as text): not a round trip
    assume(not any(token.lower() in raw.decode("latin-1").lower() for token in mk._GS_AS_TEXT))
    # a variable-length value must not itself contain the start of an AI ambiguity: GS ends it
    c = mk.parse(raw)
    assert (c.gtin, c.serial) == (gtin, serial)
    assert (c.key_id, c.crypto, c.check_code) == (kw.get("key_id"), kw.get("crypto"), kw.get("check_code"))
    assert c.extra == extra
    assert c.raw == raw
    assert mk.from_storage(c.base64).raw == raw
    assert mk.from_storage(raw).raw == raw


@FAST
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300),
                 st.builds(lambda a, b: a + b, st.sampled_from([b"01", b"0104650194496163", b"(01)"]),
                           st.binary(max_size=80))))
def test_garbage_raises_only_marking_code_error_with_a_field(data):
    try:
        c = mk.parse(data, field="f")
    except mk.MarkingCodeError as exc:
        assert exc.field == "f" and str(exc)
    else:
        assert c.raw and len(c.gtin) == 14


@FAST
@given(st.one_of(st.binary(max_size=120), st.text(max_size=120)))
def test_from_storage_garbage_raises_only_marking_code_error(data):
    try:
        mk.from_storage(data, field="g")
    except mk.MarkingCodeError as exc:
        assert exc.field == "g"
