"""What a run tells its user: the report and its verdict, progress, known divergences.

* ``report``: the report of a run, an honest verdict and every check;
* ``clauses``: which clauses of specs/ a divergence concerns;
* ``progress``: a run's progress on stderr;
* ``known``: the known divergences an implementation sets aside until fixed.
"""
