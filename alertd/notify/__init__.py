"""Delivery of notifications: the durable outbox, apprise in worker threads, retries, splitting.

The dispatcher writes ``Notification`` rows to the ``Outbox``; ``Delivery`` picks them up and
sends them through a ``Notifier`` (``AppriseNotifier`` in the daemon, ``RecordingNotifier`` in
tests).
"""
