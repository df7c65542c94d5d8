"""What a task writes, as its run keeps it: the last lines, for the event that ends the task.

A task's output reaches its run as :class:`~flow2.OutputEvent` s, emitted
where it is produced: a shell task's reader hands each chunk of the
command's stdout and stderr to :func:`write_output`; what a task's code
prints and logs is handed over by the listener that captures it. The run
keeps the last :data:`KEPT_LINES` lines of each task (stdout, stderr and log
lines interleaved in the order they came) in an :class:`OutputTail` on the
task's record; every event built after that carries the last
:data:`TAIL_LINES` of them as ``event.output`` (the producer puts the data on
the event, never a listener), and the run store reads all it keeps from the
record.
"""

from __future__ import annotations

from collections import deque

from ._context import current_record

#: Lines of each task's output carried by its events (``event.output``).
TAIL_LINES = 20
#: Lines of each task's output its record keeps (what the run store keeps).
KEPT_LINES = 200
#: Longest partial line held back; a longer one counts as a line.
MAX_PARTIAL = 65536


class OutputTail:
    """The last lines one task wrote in one run, and the unfinished line of each stream."""

    __slots__ = ("lines", "partials")

    def __init__(self) -> None:
        self.lines: deque[str] = deque(maxlen=KEPT_LINES)
        self.partials: dict[str, str] = {}

    def add(self, stream: str, text: str, final: bool = False) -> None:
        """Add ``text`` written to ``stream``; ``final``: the stream ended."""
        partial = self.partials.get(stream)
        if partial:
            text = partial + text
        # Only the last lines are kept: a 64 KiB chunk is split at its last
        # KEPT_LINES newlines, not at every one.
        pieces = text.rsplit("\n", KEPT_LINES)
        rest = pieces.pop()
        if len(pieces) == KEPT_LINES:
            pieces[0] = pieces[0].rpartition("\n")[2]
        if final or len(rest) > MAX_PARTIAL:
            if rest:
                pieces.append(rest)
            rest = ""
        self.partials[stream] = rest
        if pieces:
            if "\r" in text:
                pieces = [last_segment(piece) for piece in pieces]
            self.lines.extend(pieces)

    def text(self, count: int = TAIL_LINES) -> str | None:
        """The last ``count`` lines (at most :data:`KEPT_LINES`), unfinished ones included.

        None when the task wrote nothing.
        """
        lines = list(self.lines)
        lines += [last_segment(partial) for partial in self.partials.values() if partial]
        return "\n".join(lines[-count:]) if lines else None


def last_segment(text: str) -> str:
    """What a terminal shows of a line with carriage returns: the text after the last one."""
    if "\r" not in text:
        return text
    return text.rstrip("\r").rpartition("\r")[2]


def write_output(text: str, stream: str = "stdout", *, final: bool = False) -> bool:
    """Hand ``text`` that the running task wrote to ``stream`` to its run, as an output event.

    Call it from the event loop's thread, inside the task's code (a shell
    task's reader does). ``final`` says the stream ended.

    :returns: False when no listener of the task's run takes output events
        (the caller then shows the text some other way)
    """
    record = current_record.get()
    if record is None:
        return False
    return record.run.emit_output(record, stream, text, final=final)
