"""alertd: watches exchange account streams and tells people when something happens."""

__version__ = "0.1.0"
