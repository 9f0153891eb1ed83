"""The conformance kit: drive any implementation and the reference model side by side.

One sub-package per seam, in the order a run uses them:

* ``adapters``: what faces an implementation's adapter: its protocol and the
  bundled adapters, its loading and preflight, every call into it under a time
  limit, and what ``observe()`` must return; the explorer's tour uses these too;
* ``sequential``: the differential state machine (one checked step, the actions,
  the rules of a random program), the witnesses a run must reach, a divergence
  and its shortest program, and ``run_conformance``;
* ``concurrent``: overlapping calls from several clients, their histories, the
  linearizability checker, and ``run_concurrent``;
* ``vectors``: language-neutral test vectors, their JSON forms and JSON Schema;
* ``reports``: the report and its verdict, progress, the spec clauses a
  divergence concerns, and the known divergences an implementation sets aside.

Beside them, what every seam shares: ``fixtures`` (keys, stop conditions,
hostile values, clock moves), ``strategies`` and ``profiles`` (Hypothesis), and
``plugin``, the pytest plugin (``pytest --replication-impl=...``).
"""
