"""S/MIME readings: the MIME entity signed inside an application/pkcs7-mime part, which clients unwrap
and render (read from its BER encoding, definite or indefinite lengths, the content in pieces).
"""

from __future__ import annotations

from collections.abc import Iterator

# S/MIME signed data in a part of its own (RFC 8551 section 3.5.2): Evolution (e-mail-parser-application-
# smime.c, camel_cipher_context_decrypt_sync) and Thunderbird unwrap the MIME entity signed inside and
# render it, whatever the signature. It lies in the DER (BER) structure, beyond the neutralizer's sight.
PKCS7 = frozenset(
    {
        "application/pkcs7-mime",
        "application/x-pkcs7-mime",
        "application/xpkcs7mime",
        "application/xpkcs7-mime",
    }
)
_SIGNED_DATA = bytes.fromhex("06092a864886f70d010702")  # OBJECT IDENTIFIER 1.2.840.113549.1.7.2


def is_signed_data(der: bytes) -> bool:
    """Whether a pkcs7-mime part's decoded body is signed data (enveloped, encrypted, data is out of
    anyone's sight but the reader's)."""
    return _SIGNED_DATA in der[:32]


def _ber(data: bytes, pos: int) -> tuple[int, int, int] | None:
    """(tag, start of the contents, their end or -1 when indefinite) of the BER element at ``pos``, or
    None where it is malformed (or has a tag number above 30, which signed data does not use)."""
    if pos + 2 > len(data) or data[pos] & 0x1F == 0x1F:
        return None
    tag, first, start = data[pos], data[pos + 1], pos + 2
    if first < 0x80:
        return (tag, start, start + first) if start + first <= len(data) else None
    if first == 0x80:
        return (tag, start, -1) if tag & 0x20 else None  # indefinite: constructed only
    n = first & 0x7F
    if n > 4 or start + n > len(data):
        return None
    end = start + n + int.from_bytes(data[start : start + n], "big")
    return (tag, start + n, end) if end <= len(data) else None


def _ber_children(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(tag, contents' start, contents' end, element's end) of each element in a constructed
    element's contents from ``start`` to ``end`` (-1: up to an end-of-contents mark)."""
    pos = start
    while pos < (len(data) if end < 0 else end):
        if end < 0 and data[pos : pos + 2] == b"\0\0":
            return
        element = _ber(data, pos)
        if element is None:
            raise ValueError("malformed BER")
        tag, cstart, cend = element
        if cend < 0:  # indefinite: the contents end where the children's end-of-contents mark is
            cend = cstart
            for child in _ber_children(data, cstart, -1):
                cend = child[3]
            after = cend + 2
        else:
            after = cend
        yield tag, cstart, cend, after
        pos = after
    if end < 0:
        raise ValueError("unterminated BER")


def signed_content(der: bytes) -> bytes | None:
    """The content signed in a ContentInfo of signed data (ContentInfo, SignedData,
    EncapsulatedContentInfo: its eContent's octets, constructed or not), or None where it cannot be read."""
    try:
        top = _ber(der, 0)
        if top is None or top[0] != 0x30:
            return None
        info = list(_ber_children(der, top[1], top[2]))
        if len(info) < 2 or info[1][0] != 0xA0:
            return None
        signed = next(_ber_children(der, info[1][1], info[1][2]))
        encap = [c for c in _ber_children(der, signed[1], signed[2]) if c[0] == 0x30][0]
        econtent = [c for c in _ber_children(der, encap[1], encap[2]) if c[0] == 0xA0]
        if not econtent:
            return b""  # detached: nothing signed in it
        octets = next(_ber_children(der, econtent[0][1], econtent[0][2]))
        return _octets(der, octets)
    except (ValueError, IndexError, StopIteration, RecursionError):  # (hostile nesting too)
        return None


def _octets(der: bytes, element: tuple[int, int, int, int]) -> bytes:
    tag, start, end, _ = element
    if tag == 0x04:
        return der[start:end]
    if tag != 0x24:
        raise ValueError("not an OCTET STRING")
    return b"".join(_octets(der, child) for child in _ber_children(der, start, end))
