"""The strict subset of DER (ITU-T X.690) that SM2 keys and messages need.

Writers produce canonical DER. The reader accepts canonical DER only:
single-byte tags, definite lengths in their shortest form, minimal INTEGER
encodings, octet-aligned BIT STRINGs, minimal OID arcs, and no bytes left
over anywhere. Anything else raises :class:`DERError`, which callers turn
into their own opaque error (``InvalidKey``, ``InvalidSignature``,
``DecryptionFailed``).
"""

from __future__ import annotations

INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
SEQUENCE = 0x30

_MAX_LENGTH_OCTETS = 4


class DERError(ValueError):
    """The input is not the canonical DER that was expected."""


def explicit_tag(number: int) -> int:
    """Return the tag byte of the constructed context-specific ``[number]``."""
    if not 0 <= number <= 30:
        raise ValueError("context tag number out of range")
    return 0xA0 | number


# --- writer ---------------------------------------------------------------


def encode_tlv(tag: int, content: bytes) -> bytes:
    """Return ``tag || length || content`` with a DER length."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = (n.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + n.to_bytes(size, "big") + content


def encode_integer(value: int) -> bytes:
    """Return the DER INTEGER of ``value`` (two's complement, minimal)."""
    size = (value if value >= 0 else ~value).bit_length() // 8 + 1
    return encode_tlv(INTEGER, value.to_bytes(size, "big", signed=True))


def encode_octet_string(data: bytes) -> bytes:
    """Return the DER OCTET STRING holding ``data``."""
    return encode_tlv(OCTET_STRING, data)


def encode_bit_string(data: bytes) -> bytes:
    """Return the DER BIT STRING of the whole bytes ``data`` (0 unused bits)."""
    return encode_tlv(BIT_STRING, b"\x00" + data)


def encode_oid(dotted: str) -> bytes:
    """Return the DER OBJECT IDENTIFIER of ``dotted`` (e.g. ``"1.2.156"``)."""
    arcs = [int(arc) for arc in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39):
        raise ValueError("invalid object identifier")
    body = b"".join(_base128(arc) for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]])
    return encode_tlv(OID, body)


def encode_sequence(*items: bytes) -> bytes:
    """Return the DER SEQUENCE of the already encoded ``items``."""
    return encode_tlv(SEQUENCE, b"".join(items))


def encode_explicit(number: int, inner: bytes) -> bytes:
    """Return ``[number] EXPLICIT`` around the already encoded ``inner``."""
    return encode_tlv(explicit_tag(number), inner)


def _base128(arc: int) -> bytes:
    if arc < 0:
        raise ValueError("negative object identifier arc")
    out = [arc & 0x7F]
    arc >>= 7
    while arc:
        out.append(0x80 | (arc & 0x7F))
        arc >>= 7
    return bytes(reversed(out))


# --- reader ---------------------------------------------------------------


class DERReader:
    """Reads consecutive DER elements from ``data``; see :func:`read_sequence`.

    Every ``read_*`` method raises :class:`DERError` when the next element
    is missing, has another tag, or is not canonical.
    """

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._pos = 0

    def at_end(self) -> bool:
        """Return True when every byte has been read."""
        return self._pos == len(self._data)

    def finish(self) -> None:
        """Raise :class:`DERError` if any byte is left unread."""
        if not self.at_end():
            raise DERError("trailing data")

    def peek_tag(self) -> int | None:
        """Return the next tag byte, or None at the end."""
        return None if self.at_end() else self._data[self._pos]

    def read_element(self, tag: int) -> bytes:
        """Return the content of the next element, which must carry ``tag``."""
        if self.peek_tag() != tag:
            raise DERError("unexpected tag")
        length, start = _read_length(self._data, self._pos + 1)
        end = start + length
        if end > len(self._data):
            raise DERError("element runs past the end")
        self._pos = end
        return self._data[start:end]

    def read_sequence(self) -> DERReader:
        """Return a reader over the content of the next SEQUENCE."""
        return DERReader(self.read_element(SEQUENCE))

    def read_explicit(self, number: int) -> DERReader | None:
        """Return a reader inside ``[number] EXPLICIT``, or None if absent."""
        tag = explicit_tag(number)
        if self.peek_tag() != tag:
            return None
        return DERReader(self.read_element(tag))

    def read_integer(self) -> int:
        """Return the next INTEGER (minimal two's complement)."""
        body = self.read_element(INTEGER)
        if not body:
            raise DERError("empty INTEGER")
        if len(body) > 1 and (
            (body[0] == 0x00 and body[1] < 0x80)
            or (body[0] == 0xFF and body[1] >= 0x80)
        ):
            raise DERError("INTEGER not minimally encoded")
        return int.from_bytes(body, "big", signed=True)

    def read_octet_string(self) -> bytes:
        """Return the content of the next OCTET STRING."""
        return self.read_element(OCTET_STRING)

    def read_bit_string(self) -> bytes:
        """Return the bytes of the next BIT STRING, which must be octet-aligned."""
        body = self.read_element(BIT_STRING)
        if not body or body[0] != 0:
            raise DERError("BIT STRING is not octet-aligned")
        return body[1:]

    def read_null(self) -> None:
        """Read a NULL element."""
        if self.read_element(NULL):
            raise DERError("NULL with content")

    def read_oid(self) -> str:
        """Return the next OBJECT IDENTIFIER in dotted form."""
        arcs = _decode_arcs(self.read_element(OID))
        first = min(arcs[0] // 40, 2)
        return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def read_sequence(der: bytes) -> DERReader:
    """Return a reader inside the SEQUENCE that must be all of ``der``."""
    outer = DERReader(der)
    inner = outer.read_sequence()
    outer.finish()
    return inner


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    """Return (length, position of the content) for the length at ``pos``."""
    if pos >= len(data):
        raise DERError("missing length")
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    size = first & 0x7F
    if size == 0:
        raise DERError("indefinite length")
    if size > _MAX_LENGTH_OCTETS or pos + 1 + size > len(data):
        raise DERError("bad length")
    length = int.from_bytes(data[pos + 1 : pos + 1 + size], "big")
    if length < 0x80 or data[pos + 1] == 0:
        raise DERError("length not minimally encoded")
    return length, pos + 1 + size


def _decode_arcs(body: bytes) -> list[int]:
    if not body or body[-1] & 0x80:
        raise DERError("truncated OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    fresh = True
    for byte in body:
        if fresh and byte == 0x80:
            raise DERError("OBJECT IDENTIFIER arc not minimally encoded")
        value = (value << 7) | (byte & 0x7F)
        fresh = not byte & 0x80
        if fresh:
            arcs.append(value)
            value = 0
    return arcs
