"""The intake's side of the cluster mode, run inside the daemon when ``[cluster] url`` is set.

The daemon keeps readiness, the claim rename and validation as in the single-host mode; then,
instead of handing the job to a local worker, ``publisher`` offers each photo to the workers
through the broker, ``ledger`` records in the job's folder that it did, ``finisher`` gathers
the committed outputs into the job and closes it with the usual single rename, and
``reconciler`` re-publishes photos a broker that lost its store no longer knows. ``intake``
holds them together as one start/step(now)/stop part of the daemon's loop.
"""
