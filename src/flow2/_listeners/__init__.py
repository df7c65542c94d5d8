"""Who listens to a run: console lines, the live view, the summary, logging, the event file.

Layer rule: modules here import the standard library, their optional
libraries (rich, lazily) and ``flow2._engine`` only. A listener reads events
and the run's records; it never reaches into a task's private attributes.

Inside the layer, imports go one way too: how a status, an error, a
traceback, a result or a duration reads is in ``_text``, which imports no
other listener, so no listener imports another one for its text, and the
modules of this layer import one another without a circle
(``tests/test_layers.py`` fails on one).
"""
