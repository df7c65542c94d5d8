"""Reports on a finished run: HTML timeline, Chrome trace, JUnit XML, Markdown, OpenTelemetry.

Every report is drawn from one plain record of a run (:mod:`._model`),
built from a JSON event file, from the events of a run in memory, or (later)
from the run store. Import rule: this layer imports the engine and the
listeners, nothing above them; the runner and the command line import it.
"""
