"""How an alert becomes a message: alert text, summaries, digests, split parts, notices."""
