"""Reports on a finished run: HTML timeline, Chrome trace, JUnit XML, Markdown, OpenTelemetry.

Every report is drawn from one plain record of a run (:mod:`._model`),
built from the run store, from a JSON event file, or from the events of a
run in memory. Import rule: this layer imports the engine, the listeners
and the store, nothing above them; the runner and the command line import it.
"""
