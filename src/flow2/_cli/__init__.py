"""The ``flow2`` command line: the top layer, free to import everything below it."""
