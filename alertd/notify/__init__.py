"""Delivery of notifications: from the durable outbox to the services, through apprise in
worker threads, with retries, rate limits and digests, splitting, expiry and muting.

The dispatcher writes ``Notification`` rows to the ``Outbox``; ``Delivery`` (``delivery``)
picks them up and sends them through a ``Notifier`` (``AppriseNotifier`` in the daemon,
``RecordingNotifier`` in tests).
"""
