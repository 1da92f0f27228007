"""``hotline bench``: honest figures for the relay and the client, measured on loopback.

The benchmark starts a real relay (``hotline serve`` in a subprocess, SQLite in a temporary data dir
unless ``--db`` names another database) and drives it with real desks (:mod:`hotline.client`), then
measures a bare FastAPI WebSocket forwarder (:mod:`hotline.bench.forwarder`) with the same load
generator, so that every figure can be read against the floor of this stack. docs/PERFORMANCE.md
explains the method and keeps the latest table.

Modules: :mod:`~hotline.bench.run` (the phases), :mod:`~hotline.bench.load` (the open-loop
generator), :mod:`~hotline.bench.desks` and :mod:`~hotline.bench.floor` (the two kinds of clients),
:mod:`~hotline.bench.idle`, :mod:`~hotline.bench.auditbench`, :mod:`~hotline.bench.procs`,
:mod:`~hotline.bench.report`, :mod:`~hotline.bench.profiling`.
"""
