"""Cluster mode: many machines sharing the work of one inbox through NATS JetStream.

The broker says what is outstanding and who holds it; a write-once ``COMMIT`` marker on the
shared folder says which outputs count (``commit``); the job folder says what the person
sees. ``subjects`` names the streams and messages, ``broker`` runs the NATS client in a
thread of its own beside a loop that must never block. Without ``[cluster] url`` nothing
here is imported and the single-host daemon runs as before.
"""
