"""How a flow file becomes a tree: YAML, templates, plugins, shell tasks, graphs.

Layer rule: modules here import the standard library, their optional
libraries (PyYAML, Jinja2, lazily), ``flow2._engine``, ``flow2._executors``,
``flow2._listeners`` and ``flow2._running``; never the command line.
"""
