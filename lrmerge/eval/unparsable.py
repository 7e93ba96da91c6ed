"""Unparsable outputs (paper section 8.1): generations whose bytes are not valid UTF-8.

A Llama-2-style tokenizer has no tokens for, say, traditional Mongolian, so the model writes such text byte by byte
with byte-fallback tokens ``<0xE1><0xA0><0xA0>`` (U+1820). A model that has not learned the script emits byte
combinations that are no UTF-8 character at all. We collect the raw bytes of the generated tokens (byte tokens give
their byte, every other token the UTF-8 bytes of its text) and decode them with ``errors="strict"``.

What counts as invalid: everything Python's strict UTF-8 decoder rejects -- stray continuation bytes, a lead byte
followed by too few continuation bytes, overlong forms (``c0 80``), surrogates (``ed a0 80``), code points above
U+10FFFF, and bytes ``f5..ff``. An incomplete sequence at the very end of a generation counts as invalid too: a
generation that stopped (stop string, EOS or max_new_tokens) in the middle of a character left an unreadable tail.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
SENTENCEPIECE_SPACE = "\u2581"  # "▁"


@lru_cache(maxsize=1)
def _byte_level_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode: the printable character that stands for each byte in ByteLevel vocabularies."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def is_byte_level(tokenizer) -> bool:
    """True for tokenizers with GPT-2 style ByteLevel decoding (every token is a string of byte stand-in characters)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and "ByteLevel" in repr(backend.decoder)


def token_bytes(token: str, byte_level: bool = False) -> bytes:
    """Raw bytes of one token string: ``<0xNN>`` -> that byte; otherwise the UTF-8 of its text (▁ = space)."""
    if byte_level:
        table = _byte_level_decoder()
        try:
            return bytes(table[ch] for ch in token)
        except KeyError:
            return token.encode("utf-8")  # an added token written in plain text
    match = _BYTE_TOKEN.match(token)
    if match:
        return bytes([int(match.group(1), 16)])
    return token.replace(SENTENCEPIECE_SPACE, " ").encode("utf-8")


def generated_bytes(token_ids: Sequence[int], tokenizer) -> bytes:
    """Concatenated raw bytes of generated tokens; special tokens (EOS, padding) are skipped."""
    special = set(tokenizer.all_special_ids)
    ids = [int(i) for i in token_ids if int(i) not in special]
    byte_level = is_byte_level(tokenizer)
    return b"".join(token_bytes(token, byte_level) for token in tokenizer.convert_ids_to_tokens(ids))


def is_invalid_utf8(data: bytes) -> bool:
    """True if ``data`` is not valid UTF-8 (strict; a truncated sequence at the end is invalid)."""
    try:
        data.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        return True
    return False
