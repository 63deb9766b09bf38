"""The NTLM NT hash ([MS-NLMP] 3.3.1 NTOWFv1): MD4 of the password in UTF-16LE.

MD4 is not in every OpenSSL (OpenSSL 3 moved it to the legacy provider, which Python's
``hashlib`` usually cannot reach), so it is computed here in pure Python (RFC 1320). A password is
one or two 64-byte blocks: tens of microseconds, once per session.

The NT hash is as secret as the password: whoever holds it can authenticate as the user. It is
never logged, never in a repr or an error, and kept only by the session that needs it.
"""

from __future__ import annotations

import struct

_MASK = 0xFFFFFFFF

# RFC 1320 3.4: the order in which each round visits the message words, and its shift amounts.
_ROUND2_ORDER = (0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15)
_ROUND3_ORDER = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)
_SHIFTS = ((3, 7, 11, 19), (3, 5, 9, 13), (3, 9, 11, 15))


def _rotl(value: int, shift: int) -> int:
    value &= _MASK
    return ((value << shift) | (value >> (32 - shift))) & _MASK


def md4(data: bytes) -> bytes:
    """MD4 digest of ``data`` (RFC 1320)."""
    length_bits = (len(data) * 8) & 0xFFFFFFFFFFFFFFFF
    padded = data + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + struct.pack("<Q", length_bits)
    state = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476]
    for offset in range(0, len(padded), 64):
        words = struct.unpack("<16I", padded[offset : offset + 64])
        a, b, c, d = state
        for i in range(16):  # round 1: F(x, y, z) = xy | ~x z
            a = _rotl(a + ((b & c) | (~b & d)) + words[i], _SHIFTS[0][i % 4])
            a, b, c, d = d, a, b, c
        for i in range(16):  # round 2: G(x, y, z) = xy | xz | yz, plus sqrt(2)
            k = _ROUND2_ORDER[i]
            a = _rotl(a + ((b & c) | (b & d) | (c & d)) + words[k] + 0x5A827999, _SHIFTS[1][i % 4])
            a, b, c, d = d, a, b, c
        for i in range(16):  # round 3: H(x, y, z) = x ^ y ^ z, plus sqrt(3)
            k = _ROUND3_ORDER[i]
            a = _rotl(a + (b ^ c ^ d) + words[k] + 0x6ED9EBA1, _SHIFTS[2][i % 4])
            a, b, c, d = d, a, b, c
        state = [(s + v) & _MASK for s, v in zip(state, (a, b, c, d), strict=True)]
    return struct.pack("<4I", *state)


def nt_hash(password: str) -> str:
    """The NT hash of ``password`` as 32 lower-case hex digits (what ``spnego.NTLMHash`` takes).

    Characters that UTF-16 cannot carry (lone surrogates) are encoded as Windows does, with
    ``surrogatepass``.
    """
    return md4(password.encode("utf-16-le", "surrogatepass")).hex()
