"""The engine: what a task is, how groups schedule their children, what a run is and emits.

Layer rule: modules here import only the standard library and each other.
They never import the executors, the listeners, the runner, the flows or the
command line; those plug in from above (an executor registers its name in
``EXECUTOR_FACTORIES``, the runner registers itself as the default runner,
listeners receive events).
"""
