"""Share PINs: 10 Crockford base32 symbols (50 bits), shown ``XXXX-XXXX-XX``.

Crockford's alphabet leaves out I, L, O and U, so a PIN read aloud or copied by hand survives the usual
confusions: input is upper-cased, spaces and dashes are dropped, and O/I/L are read as 0/1/1.
"""

from __future__ import annotations

import math
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 10
ENTROPY_BITS = LENGTH * math.log2(len(ALPHABET))
_CONFUSABLES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_GROUPS = (4, 4, 2)


def generate_pin() -> str:
    """A fresh PIN in its stored (normalised, ungrouped) form."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalise_pin(raw: str) -> str | None:
    """The stored form of what a user typed, or None if it cannot be a PIN at all."""
    cleaned = "".join(ch for ch in raw if ch not in " -\t").upper().translate(_CONFUSABLES)
    if len(cleaned) != LENGTH or any(ch not in ALPHABET for ch in cleaned):
        return None
    return cleaned


def format_pin(pin: str) -> str:
    """Grouped for display: ``7QK4M2XD9T`` -> ``7QK4-M2XD-9T``."""
    parts, start = [], 0
    for size in _GROUPS:
        parts.append(pin[start:start + size])
        start += size
    return "-".join(parts)
