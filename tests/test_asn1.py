"""The strict DER subset, checked against OpenSSL's encoder and X.690 rules."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xinfeng.sdk import asn1
from xinfeng.sdk.asn1 import DERError, DERReader

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="no openssl CLI")


def openssl_genstr(spec: str, tmp_path: Path) -> bytes:
    """DER that OpenSSL's ASN1_generate (``asn1parse -genconf``) makes of spec."""
    conf, out = tmp_path / "gen.cnf", tmp_path / "out.der"
    conf.write_text(f"asn1={spec}\n")
    command = ["asn1parse", "-genconf", str(conf), "-noout", "-out", str(out)]
    subprocess.run(["openssl", *command], check=True, capture_output=True)
    return out.read_bytes()


# --- writer, against OpenSSL ----------------------------------------------------


@needs_openssl
@pytest.mark.parametrize(
    "value", [0, 1, 127, 128, 255, 256, -1, -128, -129, 2**255, 2**256 - 1, -(2**80)]
)
def test_asn1_integer_matches_openssl(value: int, tmp_path: Path) -> None:
    expected = openssl_genstr(f"INTEGER:{value}", tmp_path)
    assert asn1.encode_integer(value) == expected


@needs_openssl
@pytest.mark.parametrize(
    "oid", ["1.2.840.10045.2.1", "1.2.156.10197.1.301", "2.999.1", "1.3.6.1.4.1"]
)
def test_asn1_oid_matches_openssl(oid: str, tmp_path: Path) -> None:
    assert asn1.encode_oid(oid) == openssl_genstr(f"OID:{oid}", tmp_path)


@needs_openssl
@pytest.mark.parametrize("size", [1, 127, 128, 255, 256, 70000])
def test_asn1_octet_string_lengths_match_openssl(size: int, tmp_path: Path) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    spec = f"FORMAT:HEX,OCTETSTRING:{data.hex()}"
    assert asn1.encode_octet_string(data) == openssl_genstr(spec, tmp_path)


@needs_openssl
def test_asn1_bit_string_matches_openssl(tmp_path: Path) -> None:
    spec = "FORMAT:HEX,BITSTRING:04aa55"
    assert asn1.encode_bit_string(b"\x04\xaa\x55") == openssl_genstr(spec, tmp_path)


def test_asn1_empty_octet_string_follows_x690() -> None:
    assert asn1.encode_octet_string(b"") == b"\x04\x00"


def test_asn1_sequence_and_explicit_tags_follow_x690() -> None:
    inner = asn1.encode_explicit(1, asn1.encode_integer(5))
    assert asn1.encode_sequence(asn1.encode_integer(1), inner).hex() == (
        "3008020101a103020105"
    )


def test_asn1_oid_rejects_invalid_first_arcs() -> None:
    for bad in ["1", "3.1", "1.40", "1.2.-3"]:
        with pytest.raises(ValueError):
            asn1.encode_oid(bad)


# --- reader, canonical input --------------------------------------------------


@given(st.integers(min_value=-(2**300), max_value=2**300))
def test_asn1_integer_round_trips(value: int) -> None:
    reader = DERReader(asn1.encode_integer(value))
    assert reader.read_integer() == value
    reader.finish()


@given(st.lists(st.integers(min_value=0, max_value=2**70), min_size=1, max_size=8))
def test_asn1_oid_round_trips(tail: list[int]) -> None:
    dotted = ".".join(str(a) for a in [1, 2, *tail])
    assert DERReader(asn1.encode_oid(dotted)).read_oid() == dotted


def test_asn1_reads_oid_with_first_arc_two() -> None:
    assert DERReader(bytes.fromhex("0603883703")).read_oid() == "2.999.3"


def test_asn1_reads_nested_structure() -> None:
    der = bytes.fromhex("300f020101a1030201050403abcdef0500")
    seq = asn1.read_sequence(der)
    assert seq.read_integer() == 1
    tagged = seq.read_explicit(1)
    assert tagged is not None and tagged.read_integer() == 5
    assert seq.read_explicit(0) is None
    assert seq.read_octet_string() == b"\xab\xcd\xef"
    seq.read_null()
    seq.finish()


# --- reader, non-canonical input ------------------------------------------------


@pytest.mark.parametrize(
    "der_hex",
    [
        pytest.param("3080020101 0000", id="indefinite_length"),
        pytest.param("308103020101", id="long_form_for_short_length"),
        pytest.param("30820003020101", id="long_form_two_octets"),
        pytest.param("3085000000000302 0101", id="five_length_octets"),
        pytest.param("3004020101", id="length_past_end"),
        pytest.param("30", id="missing_length"),
        pytest.param("3003020101 00", id="trailing_byte"),
        pytest.param("3103020101", id="set_instead_of_sequence"),
        pytest.param("", id="empty_input"),
    ],
)
def test_asn1_read_sequence_rejects(der_hex: str) -> None:
    with pytest.raises(DERError):
        seq = asn1.read_sequence(bytes.fromhex(der_hex.replace(" ", "")))
        seq.read_integer()
        seq.finish()


@pytest.mark.parametrize(
    "der_hex",
    [
        pytest.param("0200", id="empty"),
        pytest.param("02020001", id="leading_zero"),
        pytest.param("0202ffff", id="leading_ff"),
        pytest.param("1f0201", id="high_tag_number_form"),
        pytest.param("2203020101", id="constructed_integer"),
        pytest.param("0a0101", id="enumerated"),
    ],
)
def test_asn1_read_integer_rejects(der_hex: str) -> None:
    with pytest.raises(DERError):
        DERReader(bytes.fromhex(der_hex)).read_integer()


@pytest.mark.parametrize(
    "der_hex",
    [
        pytest.param("0300", id="no_unused_bits_byte"),
        pytest.param("030201ff", id="one_unused_bit"),
        pytest.param("2303030000", id="constructed"),
    ],
)
def test_asn1_read_bit_string_rejects(der_hex: str) -> None:
    with pytest.raises(DERError):
        DERReader(bytes.fromhex(der_hex)).read_bit_string()


@pytest.mark.parametrize(
    "der_hex",
    [
        pytest.param("0600", id="empty"),
        pytest.param("06022a86", id="truncated_arc"),
        pytest.param("0603802a01", id="arc_with_leading_0x80"),
    ],
)
def test_asn1_read_oid_rejects(der_hex: str) -> None:
    with pytest.raises(DERError):
        DERReader(bytes.fromhex(der_hex)).read_oid()


def test_asn1_read_null_rejects_content() -> None:
    with pytest.raises(DERError):
        DERReader(bytes.fromhex("050100")).read_null()


def test_asn1_read_rejects_wrong_tag() -> None:
    with pytest.raises(DERError):
        DERReader(asn1.encode_integer(1)).read_octet_string()


def test_asn1_finish_rejects_unread_element() -> None:
    reader = DERReader(asn1.encode_integer(1) + asn1.encode_integer(2))
    reader.read_integer()
    with pytest.raises(DERError):
        reader.finish()
