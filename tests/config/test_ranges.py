"""Settings that type-check but would leave the daemon silent (no worker, every alert expired,
no heartbeat) are refused by `alertd check`, with the path, the line and the allowed range."""

from __future__ import annotations

import pytest

from .conftest import ProblemsOf, lines

# One line per key, so that the line of each problem is known: the setting under test
# replaces the line that starts with its key.
BASE = """\
[[accounts]]
name = "main"
exchange = "piexgo"
url = "wss://api.piexgo.com/ws"
streams = ["pinfo"]
connect_timeout = "10s"
ping_interval = "20s"
ping_timeout = "10s"
backoff_initial = "1s"
backoff_max = "1m"
max_message_size = 1048576
queue_size = 1000
[accounts.auth]
login_timeout = "10s"

[channels.me]
urls = ["json://localhost:8080/"]
max_length = 4000
timeout = "30s"
rate_limit = "20/1m"

[dispatch]
default_channel = "me"
retry_initial = "2s"
retry_max = "5m"
max_age = "1d"
workers = 4
group_max_items = 50

[[rules]]
name = "filled"
on = "order.filled"
"""


def _with(setting: str) -> str:
    key = setting.split(" = ", maxsplit=1)[0]
    out = [setting if line.startswith(f"{key} = ") else line for line in BASE.splitlines()]
    assert setting in out, f"no line for {key}"
    return "\n".join(out) + "\n"


def test_base_config_is_valid(problems_of: ProblemsOf) -> None:
    """The config the cases below change passes as it is."""
    assert problems_of(BASE) == []


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            "workers = 0",
            "config.toml:27 dispatch.workers: 0 is too small: allowed is 1 or more "
            "(with no worker thread nothing is ever sent)",
        ),
        (
            'max_age = "0s"',
            'config.toml:26 dispatch.max_age: "0s" is too small: allowed is "1m" or longer '
            "(an alert must outlive a few retries, or it expires unsent)",
        ),
        (
            'retry_initial = "0s"',
            'config.toml:24 dispatch.retry_initial: "0s" is too small: allowed is "100ms" or '
            "longer (retrying without a pause hammers a failing service)",
        ),
        (
            'retry_max = "1s"',
            'config.toml:25 dispatch.retry_max: "1s" is less than retry_initial "2s": allowed '
            'is "2s" or longer',
        ),
        (
            "group_max_items = -1",
            "config.toml:28 dispatch.group_max_items: -1 is too small: allowed is 1 or more "
            "(a grouped message must list at least one alert)",
        ),
        (
            "max_length = 5",
            "config.toml:18 channels.me.max_length: 5 is too small: allowed is 100 or more "
            "(a message part must hold a title, a part marker and some text)",
        ),
        (
            'timeout = "0s"',
            'config.toml:19 channels.me.timeout: "0s" is too small: allowed is "1s" or longer '
            "(a delivery needs time to reach the service)",
        ),
        (
            'rate_limit = "0/1m"',
            'config.toml:20 channels.me.rate_limit: "0/1m" is not a rate: allowed is '
            "COUNT/PERIOD with COUNT at least 1 and PERIOD in s, m, h or d "
            '(e.g. "20/1m", "5/30s")',
        ),
        (
            "queue_size = 0",
            "config.toml:12 accounts[0].queue_size: 0 is too small: allowed is 10 or more "
            "(smaller drops events in every burst of frames)",
        ),
        (
            "max_message_size = 0",
            "config.toml:11 accounts[0].max_message_size: 0 is too small: allowed is 1024 or "
            "more (a larger frame is refused, and exchange frames often are)",
        ),
        (
            'ping_interval = "0s"',
            'config.toml:7 accounts[0].ping_interval: "0s" is too small: allowed is "1s" or '
            "longer (the heartbeat is how a half-open connection is noticed)",
        ),
        (
            'ping_timeout = "0s"',
            'config.toml:8 accounts[0].ping_timeout: "0s" is too small: allowed is "1s" or '
            "longer (a pong needs time to come back over the network)",
        ),
        (
            'connect_timeout = "0s"',
            'config.toml:6 accounts[0].connect_timeout: "0s" is too small: allowed is "1s" or '
            "longer (a connection attempt needs time to open a socket and TLS)",
        ),
        (
            'login_timeout = "0s"',
            'config.toml:14 accounts[0].auth.login_timeout: "0s" is too small: allowed is "1s" '
            "or longer (the login reply needs time to come back)",
        ),
        (
            'backoff_initial = "0s"',
            'config.toml:9 accounts[0].backoff_initial: "0s" is too small: allowed is "100ms" '
            "or longer (reconnecting without a pause hammers the exchange)",
        ),
        (
            'backoff_max = "500ms"',
            'config.toml:10 accounts[0].backoff_max: "500ms" is less than backoff_initial "1s": '
            'allowed is "1s" or longer',
        ),
    ],
)
def test_values_below_the_minimum_are_refused(
    problems_of: ProblemsOf, setting: str, expected: str
) -> None:
    """Each setting below its minimum is one problem naming the path, line and allowed range."""
    assert lines(problems_of(_with(setting))) == [expected]


def test_rate_limit_period_the_runtime_cannot_read_is_refused(problems_of: ProblemsOf) -> None:
    """A rate_limit period the delivery stage cannot parse ("1h30m") fails at check time, not
    when the first alert is sent."""
    problems = problems_of(_with('rate_limit = "20/1h30m"'))
    assert [(p.line, p.path) for p in problems] == [(20, "channels.me.rate_limit")]


@pytest.mark.parametrize(
    "setting",
    [
        "workers = 1",
        'max_age = "1m"',
        'retry_initial = "100ms"',
        'retry_max = "2s"',
        "group_max_items = 1",
        "max_length = 100",
        'rate_limit = "1/s"',
        "queue_size = 10",
        "max_message_size = 1024",
        'ping_interval = "1s"',
        'backoff_max = "1s"',
    ],
)
def test_the_minimum_itself_is_allowed(problems_of: ProblemsOf, setting: str) -> None:
    """The smallest allowed value of each setting passes."""
    assert problems_of(_with(setting)) == []
