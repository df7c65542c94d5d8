"""The layer that owns a run: its settings, its listeners, the store's plans, signals, its result.

Between the command line and the engine. :class:`~flow2.Runner` reads a
run's settings once (:mod:`._settings`), builds its listeners in one place
(:mod:`._assembly`), opens the run store and the plans of a resume or a
partial run (:mod:`._plans`), takes the signals while the run runs
(:mod:`._signals`), drives the engine and returns a
:class:`~flow2.RunResult` (:mod:`._result`).

Layer rule: modules here import the standard library, ``flow2._engine``,
``flow2._executors``, ``flow2._listeners``, ``flow2._store`` and
``flow2._reports``; never ``flow2._flows`` or the command line, which
build on this layer.
"""
