"""UIDs of result objects: random, or derived from a seed so that a job's retry repeats them.

Inside :func:`derived_uids` every :func:`new_uid` is a UID hashed from the seed and a running
count (PS3.5 B.2, pydicom's root), so a second attempt of the same job that builds the same
objects in the same order names them with the same UIDs; outside it, a random UID.

Example::

    with derived_uids("job-id", "1.2.3"):
        a = new_uid()      # the same value each time this block runs
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pydicom.uid import generate_uid

__all__ = ["derived_uids", "new_uid"]

_seed: ContextVar[tuple[str, Iterator[int]] | None] = ContextVar("radpacs_uid_seed", default=None)


@contextmanager
def derived_uids(*seed: str) -> Iterator[None]:
    """Make :func:`new_uid` deterministic from ``seed`` within the block."""
    token = _seed.set(("\x1f".join(seed), itertools.count(1)))
    try:
        yield
    finally:
        _seed.reset(token)


def new_uid() -> str:
    """A new UID: the next one derived from the current seed, or a random one."""
    current = _seed.get()
    if current is None:
        return str(generate_uid())
    seed, counter = current
    return str(generate_uid(entropy_srcs=[seed, str(next(counter))]))
