"""The commands of ``alertd`` (run, demo, replay, silence, test-notify): each one
wires stages for one job; ``alertd.cli`` declares their arguments."""
