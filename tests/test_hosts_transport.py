"""Which base URLs may carry a key over plain http, and which are refused outright."""

from __future__ import annotations

import pytest

from glmchat.client import GlmClient
from glmchat.config import Config, resolve_host
from glmchat.errors import ConfigError
from glmchat.hosts import BUILTIN_HOSTS, check_transport, display_url, is_local_url, is_private_url, url_problem
from glmchat.protocol.events import StreamFailed
from tests.test_client import request_for, run

# Names a DNS server can point anywhere: they only *look* like loopback or private addresses.
LOOKALIKES = [
    "http://127.attacker.example/api/paas/v4",
    "http://127.0.0.1.nip.io/api/paas/v4",
    "http://localhost.attacker.example/v1",
    "http://127.1.attacker.example/v1",
    "http://10.0.0.1.sslip.io/v1",
    "http://192.168.1.2.nip.io/v1",
    "http://0x7f.example/v1",
]


@pytest.mark.parametrize("url", LOOKALIKES)
def test_names_that_look_like_loopback_are_remote(url: str) -> None:
    assert not is_local_url(url)
    assert not is_private_url(url)
    host = BUILTIN_HOSTS["zai"].with_overrides({"base_url": url})
    with pytest.raises(ConfigError, match="refusing unencrypted http://"):
        check_transport(host)
    # A self-hosted profile is not fooled either.
    with pytest.raises(ConfigError):
        check_transport(BUILTIN_HOSTS["vllm"].with_overrides({"base_url": url}))


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000/v1", "http://127.8.9.10/v1", "http://[::1]:8000/v1", "http://localhost:11434",
     "http://LOCALHOST./v1", "http://gpu.localhost/v1", "http://[::ffff:127.0.0.1]/v1", "http://0.0.0.0:8000"],
)
def test_loopback_by_address_or_the_localhost_name(url: str) -> None:
    assert is_local_url(url)
    check_transport(BUILTIN_HOSTS["zai"].with_overrides({"base_url": url}))


@pytest.mark.parametrize(
    ("url", "private"),
    [("http://10.1.2.3:8000", True), ("http://192.168.0.7", True), ("http://172.16.0.1", True),
     ("http://[fd00::1]", True), ("http://[fe80::1%25eth0]:80", True), ("http://gpu-box:8000", True),
     ("http://gpu-box.lan:8000", True), ("http://printer.local", True), ("http://8.8.8.8", False),
     ("http://172.32.0.1", False), ("http://example.com", False)],
)
def test_private_addresses_for_self_hosted_profiles(url: str, private: bool) -> None:
    assert is_private_url(url) is private
    host = BUILTIN_HOSTS["vllm"].with_overrides({"base_url": url})
    if private:
        check_transport(host)
    else:
        with pytest.raises(ConfigError):
            check_transport(host)


async def test_a_lookalike_name_gets_no_request_and_no_key() -> None:
    host = BUILTIN_HOSTS["zai"].with_overrides({"base_url": "http://127.0.0.1.nip.io/api/paas/v4"})
    async with GlmClient() as client:
        events = await run(client, host, request_for(host))
    [event] = events
    assert isinstance(event, StreamFailed) and isinstance(event.error, ConfigError)


@pytest.mark.parametrize(
    ("url", "needle"),
    [("http://[::1", "brackets"), ("http://127.0.0.1:99999/v1", "port"), ("http://127.0.0.1:0/v1", "port"),
     ("http://127.0.0.1:-1/v1", "port"), ("http://127.0.0.1:abc/v1", "port"), ("ftp://127.0.0.1/", "https://"),
     ("http:///v1", "no host"), ("http://[zz]/v1", "brackets"), ("http://a b/v1", "spaces"), ("", "empty"),
     ("http://127.0.0.1\n/v1", "control")],
)
def test_unusable_base_urls_are_named(url: str, needle: str) -> None:
    problem = url_problem(url)
    assert problem is not None and needle in problem
    with pytest.raises(ConfigError) as caught:
        resolve_host(Config(), "zai", base_url=url or " ")
    assert "\n" not in caught.value.message


def test_credentials_in_a_base_url_are_refused_and_never_quoted() -> None:
    url = "https://alice:hunter2-password@proxy.example/api/paas/v4"
    with pytest.raises(ConfigError) as caught:
        resolve_host(Config(), "zai", base_url=url)
    message = caught.value.message
    assert "hunter2" not in message and "alice" not in message
    assert "user name or password" in message
    assert display_url(url) == "https://proxy.example/api/paas/v4"


# -- a little fuzzing: nothing but a ConfigError (or a usable host) comes out ----------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

URL_PIECES = ["http://", "https://", "ftp://", "", "[", "]", "::1", "127.0.0.1", "localhost", ":", "99999", "0",
              "-1", "@", "user:pw@", "/v1", "%", "%zz", "#", "?", " ", "\n", "\x00", "é", "xn--", ".", "..", "65535"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(URL_PIECES) | st.text(max_size=4), max_size=8).map("".join))
def test_any_base_url_is_usable_or_a_one_line_config_error(url: str) -> None:
    try:
        host = resolve_host(Config(), "vllm", base_url=url)
    except ConfigError as exc:
        assert "\n" not in exc.message and "pw@" not in exc.message
    else:
        assert url_problem(host.base_url) is None


ARG_PIECES = ["ask", "sessions", "list", "show", "search", "export", "import", "delete", "config", "--limit",
              "--json", "--base-url", "--host", "--session", "-o", "--format", "1", "0", "-1", "99999999999999999999",
              "", "#", "x", "md", "json", "-y", "--new", "-c", "http://[::1", "--no-think"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(ARG_PIECES), max_size=6))
def test_the_argument_parser_only_ever_says_usage(argv: list[str]) -> None:
    from glmchat.cli import UsageError, _merge_top_options, build_parser

    try:
        args = build_parser().parse_args(argv)
        _merge_top_options(args)
    except UsageError as exc:
        assert "\n" not in exc.message
    except SystemExit as exc:  # --help / --version
        assert exc.code in (0, None)
    else:
        limit = getattr(args, "limit", 50)
        assert 1 <= limit <= 100_000
