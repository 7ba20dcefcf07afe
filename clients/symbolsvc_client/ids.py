"""Exchange ids that can never look like an individual number.

The service refuses a free-form field holding a run of 12 digits that passes the
individual-number check digit (``LOOKS_LIKE_INDIVIDUAL_NUMBER``). A UUID's last group
is 12 hex characters: about one UUID in 2,800 has 12 digits there that pass. These ids
are UUIDs with that group split in two, so no run of digits is longer than 8.
"""

from __future__ import annotations

import uuid


def new_id() -> str:
    """A fresh random id (a UUID4 as ``8-4-4-4-6-6`` hex): never more than 8 digits in a
    row."""
    u = str(uuid.uuid4())
    return f"{u[:-6]}-{u[-6:]}"
