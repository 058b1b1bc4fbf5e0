"""From alerts to notifications: route, silence, inhibit, group, hold for quiet hours, and
write to the outbox (``dispatcher.Dispatcher``). Each step is its own small module; silences
and inhibition answer through one interface (``muting.Muter``), which delivery asks too."""
