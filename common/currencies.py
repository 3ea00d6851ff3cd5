"""ISO 4217: the currency codes in use, kept as data in `iso_4217.txt` beside this module.

The file is read the first time a code is checked, not when a module is imported, so a
function's cold start does not pay for it. Deployed, it travels with the rest of `common/`
(terraform packs the whole package).
"""

from __future__ import annotations

import functools
import os

CODES_FILE = os.path.join(os.path.dirname(__file__), "iso_4217.txt")


@functools.cache
def iso_4217() -> frozenset[str]:
    """Every alphabetic code of ISO 4217's list one, funds and metals included."""
    with open(CODES_FILE, encoding="utf-8") as lines:
        return frozenset(code for line in lines if (code := line.strip()) and not code.startswith("#"))


def is_currency(code: str) -> bool:
    return code in iso_4217()
