"""Loading the TOML file: types, durations, decimals, unknown keys, cross references, every
problem at once with its TOML path and line."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from alertd.check import load_config, parse_config
from alertd.config.errors import ConfigError
from alertd.config.model import ChannelSettings
from alertd.config.secrets import SecretEnvironment

from .conftest import MINIMAL, ProblemsOf, lines

ACCOUNT = """\
[[accounts]]
name = "main"
exchange = "piexgo"
url = "wss://api.piexgo.com/ws"
streams = ["pinfo"]
"""
CHANNELS = """\
[channels]
me = "json://localhost:8080/"
"""


def test_minimal_config_loads_with_defaults(tmp_path: Path) -> None:
    """A small valid file loads; unspecified keys take the schema's defaults."""
    path = tmp_path / "config.toml"
    path.write_text(MINIMAL)
    config = load_config(path, secrets=SecretEnvironment(environ={}))
    assert [a.name for a in config.accounts] == ["main"]
    assert config.accounts[0].ping_interval == 20.0
    assert config.rules[0].on == "order.filled"
    assert config.rules[0].type == "event"
    assert config.daemon.timezone == "UTC"


def test_channel_url_string_becomes_channel_settings() -> None:
    """`name = "url"` in [channels] is a channel with that one URL, held as a Secret."""
    config, problems = parse_config(
        CHANNELS + 'desk = { urls = ["json://a/", "json://b/"], timeout = "5s" }\n',
        secrets=SecretEnvironment(environ={}),
    )
    assert problems == []
    assert config is not None
    me = config.channels["me"]
    assert isinstance(me, ChannelSettings)
    assert [u.reveal() for u in me.urls] == ["json://localhost:8080/"]
    assert me.urls[0].source == "channels.me"
    assert [u.reveal() for u in config.channels["desk"].urls] == ["json://a/", "json://b/"]
    assert config.channels["desk"].timeout == 5.0


def test_syntax_error_has_line_and_column(problems_of: ProblemsOf) -> None:
    """A TOML syntax error is reported as FILE:LINE:COL: message, and nothing else."""
    problems = problems_of('[daemon]\ntimezone = "UTC"\nlog_level = warning\n')
    assert len(problems) == 1
    assert lines(problems)[0].startswith("config.toml:3:13: ")
    assert "invalid value" in problems[0].message.lower()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("4h", 14400.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("1w", 604800.0),
    ],
)
def test_durations_are_read_as_seconds(text: str, seconds: float) -> None:
    """Durations written with units become float seconds."""
    config, problems = parse_config(
        MINIMAL + f'cooldown = "{text}"\n', secrets=SecretEnvironment(environ={})
    )
    assert problems == []
    assert config is not None
    assert config.rules[0].cooldown == seconds


def test_wordy_duration_gets_a_hint(problems_of: ProblemsOf) -> None:
    """ "5 mins" is refused with the spelling alertd wants, on the line it is written."""
    problems = problems_of(MINIMAL + 'cooldown = "5 mins"\n')
    assert lines(problems) == [
        'config.toml:14 rules[0].cooldown: "5 mins" is not a duration (use "5m")'
    ]


def test_bare_number_is_not_a_duration(problems_of: ProblemsOf) -> None:
    """A duration without a unit is refused, suggesting the unit."""
    problems = problems_of("[daemon]\ndrain_timeout = 10\n")
    assert lines(problems) == [
        'config.toml:2 daemon.drain_timeout: 10 is not a duration (write the unit, e.g. "10s")'
    ]


def test_thresholds_are_exact_decimals() -> None:
    """Threshold numbers written as int, float or string become exact Decimals."""
    text = (
        ACCOUNT
        + CHANNELS
        + """
[[rules]]
name = "low"
type = "threshold"
on = "balance.changed"
value = "balance"
below = 0.1
resolve_above = "0.30000000000000001"
notify = ["me"]

[[rules]]
name = "high"
type = "threshold"
on = "balance.changed"
value = "balance"
above = 100
notify = ["me"]
"""
    )
    config, problems = parse_config(text, secrets=SecretEnvironment(environ={}))
    assert problems == []
    assert config is not None
    assert config.rules[0].below == Decimal("0.1")
    assert config.rules[0].resolve_above == Decimal("0.30000000000000001")
    assert config.rules[1].above == Decimal(100)


def test_for_key_maps_to_for_field() -> None:
    """The TOML key `for` (a Python keyword) sets RuleSettings.for_."""
    text = (
        ACCOUNT
        + CHANNELS
        + """
[[rules]]
name = "low"
type = "threshold"
on = "balance.changed"
value = "balance"
below = 5
for = "10m"
notify = ["me"]
"""
    )
    config, problems = parse_config(text, secrets=SecretEnvironment(environ={}))
    assert problems == []
    assert config is not None
    assert config.rules[0].for_ == 600.0


def test_unknown_keys_say_did_you_mean(problems_of: ProblemsOf) -> None:
    """Unknown keys and sections are errors naming the closest known key, on their line."""
    problems = problems_of(
        MINIMAL + 'cooldwn = "1m"\nfor_ = "1m"\n\n[dispatcher]\ngroup_wait = "1s"\n'
    )
    assert lines(problems) == [
        'config.toml:14 rules[0].cooldwn: unknown key "cooldwn" (did you mean "cooldown"?)',
        'config.toml:15 rules[0].for_: unknown key "for_" (did you mean "for"?)',
        'config.toml:17 dispatcher: unknown section "dispatcher" (did you mean "dispatch"?)',
    ]


def test_key_above_its_table_header(problems_of: ProblemsOf) -> None:
    """A [daemon] key written at the top level says which table it belongs in."""
    problems = problems_of('timezone = "UTC"\n' + MINIMAL)
    assert lines(problems) == [
        'config.toml:1 timezone: "timezone" belongs in [daemon]: move it below that header'
    ]


def test_wrong_types_are_not_coerced(problems_of: ProblemsOf) -> None:
    """A string where a boolean goes (or a string where an array goes) is an error, not a
    silent conversion."""
    problems = problems_of(
        ACCOUNT.replace('streams = ["pinfo"]', 'streams = "pinfo"\nenabled = "no"')
        + 'max_message_size = "1MB"\n'
        + CHANNELS
    )
    assert lines(problems) == [
        'config.toml:5 accounts[0].streams: expected an array, got "pinfo"',
        'config.toml:6 accounts[0].enabled: expected true or false, got "no"',
        'config.toml:7 accounts[0].max_message_size: expected a whole number, got "1MB"',
    ]


def test_unknown_exchange_and_missing_required_key(problems_of: ProblemsOf) -> None:
    """An exchange alertd does not speak, and a required key left out, are both named."""
    problems = problems_of(
        '[[accounts]]\nname = "b"\nexchange = "binance"\n' + CHANNELS,
    )
    assert lines(problems) == [
        "config.toml:1 accounts[0].url: required key is missing",
        'config.toml:3 accounts[0].exchange: "binance" is not one of "piexgo", "cryptology"',
    ]


def test_rule_references_to_missing_channel_and_account(problems_of: ProblemsOf) -> None:
    """A rule naming a channel or account that does not exist gets a "did you mean"."""
    problems = problems_of(
        ACCOUNT
        + CHANNELS
        + '\n[[rules]]\nname = "r"\non = "order.filled"\naccount = "mian"\nnotify = ["mee"]\n'
    )
    assert lines(problems) == [
        'config.toml:12 rules[0].account: no account named "mian" (did you mean "main"?)',
        'config.toml:13 rules[0].notify: no channel named "mee" (did you mean "me"?)',
    ]


def test_duplicate_names(problems_of: ProblemsOf) -> None:
    """Two accounts or two rules with one name are errors pointing at the first."""
    problems = problems_of(
        ACCOUNT + ACCOUNT + CHANNELS + '[[rules]]\nname = "r"\non = "trade"\nnotify = ["me"]\n' * 2
    )
    assert lines(problems) == [
        'config.toml:7 accounts[1].name: "main" is already the name of accounts[0]',
        'config.toml:18 rules[1].name: "r" is already the name of rules[0]',
    ]


def test_dispatch_channels_must_exist(problems_of: ProblemsOf) -> None:
    """default_channel and fallback_channel name existing channels."""
    problems = problems_of(
        ACCOUNT + CHANNELS + '[dispatch]\ndefault_channel = "ops"\nfallback_channel = "m"\n'
    )
    assert lines(problems) == [
        'config.toml:9 dispatch.default_channel: no channel named "ops"',
        'config.toml:10 dispatch.fallback_channel: no channel named "m" (did you mean "me"?)',
    ]


def test_rule_without_any_channel(problems_of: ProblemsOf) -> None:
    """A rule with no notify and no default channel would alert nobody: an error."""
    problems = problems_of(ACCOUNT + CHANNELS + '[[rules]]\nname = "r"\non = "trade"\n')
    assert lines(problems) == [
        "config.toml:8 rules[0].notify: the rule names no channel and [dispatch] "
        "default_channel is not set"
    ]


def test_event_kinds_and_globs(problems_of: ProblemsOf) -> None:
    """`on` must be an event kind or a glob that matches one."""
    problems = problems_of(
        ACCOUNT
        + CHANNELS
        + '[dispatch]\ndefault_channel = "me"\n'
        + '[[rules]]\nname = "a"\non = "order.filed"\n'
        + '[[rules]]\nname = "b"\non = ["order.*", "wallet.*"]\n'
    )
    assert lines(problems) == [
        'config.toml:12 rules[0].on: "order.filed" is not an event kind '
        '(did you mean "order.filled"?)',
        'config.toml:15 rules[1].on: "wallet.*" matches no event kind',
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            'on = "balance.changed"\ntype = "threshold"',
            [
                'rules[0].value: a threshold rule needs "value" (e.g. "balance")',
                'rules[0].below: a threshold rule needs "below" or "above"',
            ],
        ),
        (
            'on = "funds.insufficient"\ntype = "rate"',
            [
                'rules[0].count: a rate rule needs "count" (e.g. 3)',
                'rules[0].within: a rate rule needs "within" (e.g. "10m")',
            ],
        ),
        (
            'on = "book"\ntype = "absence"',
            ['rules[0].after: an absence rule needs "after" (e.g. "5m")'],
        ),
        (
            'on = "order.*"\ntype = "order_timeout"',
            [
                'rules[0].open_for: an order_timeout rule needs "open_for" or "stalled_for" '
                '(e.g. "1h")'
            ],
        ),
    ],
)
def test_rule_type_required_fields(problems_of: ProblemsOf, body: str, expected: list[str]) -> None:
    """Each rule type names the fields it cannot work without, at the rule's header line."""
    problems = problems_of(ACCOUNT + CHANNELS + f'[[rules]]\nname = "r"\n{body}\nnotify = ["me"]\n')
    assert lines(problems) == [f"config.toml:8 {e}" for e in expected]


def test_timezones_are_checked(problems_of: ProblemsOf) -> None:
    """A time zone zoneinfo does not know is an error with the closest real one."""
    problems = problems_of(
        '[daemon]\ntimezone = "Europe/Berln"\n'
        + CHANNELS.replace(
            'me = "json://localhost:8080/"',
            'me = { urls = ["json://x/"], quiet_hours = [{ start = "22:00", end = "7am", '
            'timezone = "Mars/Olympus" }] }',
        )
    )
    assert lines(problems) == [
        'config.toml:2 daemon.timezone: "Europe/Berln" is not a time zone '
        '(did you mean "Europe/Berlin"?)',
        'config.toml:4 channels.me.quiet_hours[0].end: "7am" is not a time of day (use "22:00")',
        'config.toml:4 channels.me.quiet_hours[0].timezone: "Mars/Olympus" is not a time zone',
    ]


def test_expressions_and_templates_are_compiled(problems_of: ProblemsOf) -> None:
    """A where expression using a field the event kind lacks fails at check time."""
    problems = problems_of(
        ACCOUNT
        + CHANNELS
        + '[[rules]]\nname = "r"\non = "funds.insufficient"\nnotify = ["me"]\n'
        + 'where = "notional > 5"\nmessage = "{{ currency }"\n'
    )
    assert [(p.line, p.path) for p in problems] == [
        (12, "rules[0].where"),
        (13, "rules[0].message"),
    ]
    assert "notional" in problems[0].message


def test_many_problems_reported_at_once_in_file_order(problems_of: ProblemsOf) -> None:
    """One run reports problems from every section, sorted by line."""
    problems = problems_of(
        '[daemon]\ntimezone = "Nowhere"\nlog_level = "loud"\n'
        + ACCOUNT.replace('"piexgo"', '"piexgo"\nping_interval = "often"')
        + CHANNELS
        + '[[rules]]\nname = "r"\non = "trade"\nnotify = ["you"]\ncooldown = "5 mins"\n'
        + 'severity = "meh"\n'
    )
    assert [(p.line, p.path) for p in problems] == [
        (2, "daemon.timezone"),
        (3, "daemon.log_level"),
        (7, "accounts[0].ping_interval"),
        (15, "rules[0].notify"),
        (16, "rules[0].cooldown"),
        (17, "rules[0].severity"),
    ]


def test_load_config_raises_with_every_problem(tmp_path: Path) -> None:
    """load_config raises ConfigError whose format() has one line per problem."""
    path = tmp_path / "c.toml"
    path.write_text('[daemon]\ntimezone = "Nowhere"\nlog_level = "loud"\n')
    with pytest.raises(ConfigError) as exc:
        load_config(path, secrets=SecretEnvironment(environ={}))
    assert len(exc.value.problems) == 2
    assert exc.value.format().splitlines() == [
        f'{path}:2 daemon.timezone: "Nowhere" is not a time zone',
        f'{path}:3 daemon.log_level: "loud" is not one of "debug", "info", "warning", "error"',
    ]


def test_missing_file_is_a_problem(tmp_path: Path) -> None:
    """A path that does not exist is one problem, not a traceback."""
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "nope.toml")
    assert exc.value.format() == f"{tmp_path / 'nope.toml'}: no such file"


def test_sixteen_digit_float_threshold_is_exact() -> None:
    """A threshold written as a TOML float with 16 significant digits keeps every digit (read
    through binary float it came back as 78622131.65220112)."""
    text = (
        ACCOUNT
        + CHANNELS
        + """
[[rules]]
name = "low"
type = "threshold"
on = "balance.changed"
value = "balance"
below = 0.30000000000000004
resolve_above = 78622131.65220111
notify = ["me"]
"""
    )
    config, problems = parse_config(text, secrets=SecretEnvironment(environ={}))
    assert problems == []
    assert config is not None
    assert config.rules[0].resolve_above == Decimal("78622131.65220111")
    assert str(config.rules[0].resolve_above) == "78622131.65220111"
    assert config.rules[0].below == Decimal("0.30000000000000004")


def test_float_where_a_whole_number_or_duration_goes(problems_of: ProblemsOf) -> None:
    """A TOML float in a count or a duration is refused with the number as written."""
    problems = problems_of(
        "[daemon]\ndrain_timeout = 10.5\n[dispatch]\nworkers = 2.5\nretry_initial = nan\n"
    )
    assert lines(problems) == [
        'config.toml:2 daemon.drain_timeout: 10.5 is not a duration (write the unit, e.g. "10.5s")',
        "config.toml:4 dispatch.workers: expected a whole number, got 2.5",
        "config.toml:5 dispatch.retry_initial: expected a duration string such as "
        '"30s", "5m", "4h", "1d", "1h30m"',
    ]


THRESHOLD = (
    ACCOUNT
    + CHANNELS
    + """
[[rules]]
name = "low"
type = "threshold"
on = "balance.changed"
value = "balance"
below = BELOW
resolve_above = 1500
notify = ["me"]
"""
)


def test_key_with_a_type_problem_has_no_dependent_problems(problems_of: ProblemsOf) -> None:
    """below = "1,000" is one problem; resolve_above is not also told it "needs below"."""
    assert lines(problems_of(THRESHOLD.replace("BELOW", '"1,000"'))) == [
        'config.toml:14 rules[0].below: "1,000" is not a number'
    ]


def test_dependent_problems_still_reported_when_the_key_is_fine(problems_of: ProblemsOf) -> None:
    """With a valid below, a resolve_above under it is still reported."""
    problems = problems_of(THRESHOLD.replace("BELOW", "2000"))
    assert lines(problems) == [
        "config.toml:15 rules[0].resolve_above: must be at least below (2000)"
    ]


def test_range_check_skips_a_bound_with_a_type_problem(problems_of: ProblemsOf) -> None:
    """A refused retry_initial is not also the reason retry_max is "less than retry_initial"."""
    problems = problems_of('[dispatch]\nretry_initial = "2 secs"\nretry_max = "1s"\n')
    assert lines(problems) == [
        'config.toml:2 dispatch.retry_initial: "2 secs" is not a duration (use "2s")'
    ]
