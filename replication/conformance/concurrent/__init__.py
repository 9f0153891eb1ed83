"""The concurrent mode: overlapping calls from several clients, checked for linearizability.

* ``programs``: scenarios, rounds and each client's steps, and performing them;
* ``clients``: the calls made from several client processes at once;
* ``history``: every call with its invocation, its response and their real-time order;
* ``linearizability``: can some order of a history's calls explain it;
* ``minimise``: a failing history cut down, and why no order explains it;
* ``timeline``: a history drawn per client, in text;
* ``report``: a concurrent run's tally, first failure and verdict;
* ``runner``: ``run_concurrent``, a whole run.
"""

from replication.conformance.concurrent.runner import (
    HISTORIES,
    Crew,
    check_history,
    execute,
    run_concurrent,
)

__all__ = ["HISTORIES", "Crew", "check_history", "execute", "run_concurrent"]
