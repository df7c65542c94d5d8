"""Who listens to a run: console lines, the live view, the summary, logging, the event file.

Layer rule: modules here import the standard library, their optional
libraries (rich, lazily) and ``flow2._engine`` only. A listener reads events
and the run's records; it never reaches into a task's private attributes.
"""
