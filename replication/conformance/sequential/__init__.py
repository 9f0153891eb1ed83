"""The sequential kit: one call at a time, the implementation beside the reference.

In the order a run uses them:

* ``engine``: one action on both sides, and every check of that step;
* ``manifests``, ``actions``: the manifests a rule sends and the actions it applies;
* ``machine``: the differential state machine's rules, from which Hypothesis draws programs;
* ``witnesses``: the situations a run must reach, so that a green run is not a vacuous one;
* ``results``: a divergence (``ConformanceFailure``), the run's statistics;
* ``reproduction``: the printed program, without the steps the divergence does not need;
* ``runner``: ``run_conformance``, a whole run from preflight to report.
"""
