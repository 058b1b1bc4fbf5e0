"""Configuration: one TOML file, structured into the attrs classes of ``model``."""
