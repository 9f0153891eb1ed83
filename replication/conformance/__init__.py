"""The conformance kit: drive any implementation and the reference model side by side.

One concept per module, in the order a run uses them:

* ``adapter``: the protocol an implementation's adapter follows, and the bundled adapters;
* ``preflight``: the adapter loaded and checked before the run (``SetupError``);
* ``calls``: every call into the adapter, under a time limit, its crashes located;
* ``observations``: what ``observe()`` must return, and two observations compared;
* ``engine``, ``manifests``, ``actions``, ``machine``: the differential state machine,
  from one checked step to the rules of a random program;
* ``fixtures``, ``strategies``: keys, stop conditions, hostile values, contracts;
* ``witnesses``: the situations a run must reach;
* ``results``, ``clauses``, ``reproduction``: a divergence, the spec clauses it concerns,
  and its program without the steps it does not need;
* ``runner``, ``report``, ``progress``, ``known``: a run, its verdict, its progress,
  and the divergences set aside;
* ``plugin``: the pytest plugin;
* ``scenarios``, ``jsonforms``, ``vectors``, ``vector_check``: language-neutral test vectors.
"""
