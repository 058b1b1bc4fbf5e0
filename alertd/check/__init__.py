"""``alertd check``, and the checks that span stages (templates against rule fields, channel
URLs against apprise, login templates), which every loader of a config runs."""

from alertd.check.stages import check_config, load_config, parse_config, read_config

__all__ = ["check_config", "load_config", "parse_config", "read_config"]
