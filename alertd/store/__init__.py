"""The state database: one module per table, on one connection type (``database``)."""
