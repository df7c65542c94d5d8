"""The user's own frames of an exception that leaves a run.

A failure raised to the caller of ``await tree.run()`` went through flow2's
scheduling and asyncio's machinery on its way; its traceback would show a
wall of their frames around the few lines of the user's code. The root of
the tree drops those frames before the exception reaches the caller: what
remains is where the user's code called flow2 and where it failed. The
exception object itself is unchanged (the documentation promises it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import threading
from types import TracebackType

#: Where the frames of machinery come from: flow2, asyncio, the thread pools.
_MACHINERY = (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,
    os.path.dirname(os.path.abspath(asyncio.__file__)) + os.sep,
    os.path.dirname(os.path.abspath(concurrent.futures.__file__)) + os.sep,
    os.path.abspath(threading.__file__),
)


def is_machinery(filename: str) -> bool:
    """Whether a frame of ``filename`` is flow2's, asyncio's or the thread pools'."""
    return filename.startswith(_MACHINERY)


def user_frames(error: BaseException) -> BaseException:
    """``error`` with the frames of flow2, asyncio and the thread pools taken out of its
    traceback (and of the tracebacks of the errors an exception group holds)."""
    seen: set[int] = set()
    stack = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = _kept(current.__traceback__)
        stack.extend(getattr(current, "exceptions", ()))
    return error


def _kept(traceback: TracebackType | None) -> TracebackType | None:
    frames = []
    while traceback is not None:
        if not is_machinery(traceback.tb_frame.f_code.co_filename):
            frames.append(traceback)
        traceback = traceback.tb_next
    if not frames:
        return None
    for earlier, later in itertools.pairwise(frames):
        earlier.tb_next = later
    frames[-1].tb_next = None
    return frames[0]
