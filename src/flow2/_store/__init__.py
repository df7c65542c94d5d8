"""The run store: every run recorded in an embedded SQLite database, and resume.

A layer of its own: it imports the engine and the listeners, never the
runner, the flows or the command line; the runner and the command line
import it. Nothing here is imported by ``import flow2``: ``sqlite3`` loads
with the first run that records.

- ``_database``: where the store lives, opening it (checked, created or
  migrated), the queries, pruning.
- ``_failures``: what a run id looks like, and what a store's failures are
  called (read-only, disk full, corrupt), in one line each.
- ``_liveness``: whether a run that never ended is still going on (host,
  pid, the process's start, the heartbeat).
- ``_schema``: its tables and their migrations, how rows and packed rows are laid out.
- ``_values``: what is stored of a task: results (JSON when exact, pickle
  when asked), its definition's fingerprint, what it declares it reads.
- ``_recorder``: the event listener that hands records to a writer thread.
- ``_rows``: the rows the writer thread builds from them, in bulk.
- ``_fingerprint``: what a task does, as parts and digests (code, the helpers
  and constants it uses, closures, defaults, values, class); values of any depth.
- ``_files``: content digests of the files a task declares, with a stat index
  like git's (racy-clean guard), read in threads, kept in SQLite.
- ``_keys``: a task's reuse key, part by part, and how two keys differ.
- ``_reuse``: the reuser: keys each task as it is about to start, reuses an
  entry of an equal key (a resume's lineage, the cache), says why not.
- ``_dry``: what a dry run says the reuser would do.
- ``_cache``: the cache as ``flow2 cache`` sees it (entries, sizes, clearing,
  pruning), and whether a store's entries may be trusted.
- ``_history``: the text ``flow2 runs`` prints.
"""
