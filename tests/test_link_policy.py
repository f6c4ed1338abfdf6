"""Links in CAMB's replies reach only public https hosts, or the local API's own address; nothing is sent elsewhere.

The address rule is tested on parsed addresses and on resolvers of our own: no request ever goes to a
private, link-local or public address. Over real HTTP the stand-in's API runs on 127.0.0.1 and the
links point at 127.0.0.2, which is loopback (safe to listen on) but not the API's address; each test
asserts what reached the servers behind the refused links: nothing.
"""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from airflow_provider_camb._link_policy import LinkPolicy, is_public_address, parse_address
from airflow_provider_camb.exceptions import CambConnectionError, CambLinkNotAllowedError
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.operators.text_to_voice import TextToVoiceResultOperator
from tests.hostile_server import HostileServer, Received, Reply, redirect

NOT_PUBLIC = [
    "127.0.0.1",
    "127.0.0.2",
    "10.0.0.5",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # the cloud metadata address
    "100.64.0.1",  # shared (carrier-grade NAT)
    "0.0.0.0",  # noqa: S104  # an address to judge, not to bind
    "224.0.0.1",  # multicast, which Python counts as global
    "239.255.255.250",
    "255.255.255.255",
    "240.0.0.1",  # reserved
    "198.18.0.1",
    "192.0.2.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",  # AWS's IPv6 metadata address
    "ff02::1",
    "fec0::1",  # site-local, which Python counts as global
    "::ffff:10.0.0.5",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "::ffff:127.0.0.1",
    "2002:a00:5::1",  # 6to4 of 10.0.0.5
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2001:0:4136:e378:8000:63bf:f5ff:fffa",  # Teredo
    "::a00:5",  # IPv4-compatible
    "2001:db8::1",
    "fe80::1%eth0",  # with a scope, as getaddrinfo writes it
]
PUBLIC = ["8.8.8.8", "104.16.0.1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"]
API = "https://client.camb.ai/apis"


def answers(*addresses: str) -> Any:
    """A resolver that answers ``addresses`` for every host (no DNS is asked)."""

    def resolve(host: str, port: int) -> Sequence[tuple[Any, ...]]:
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses
        ]

    return resolve


def public_api(*link_addresses: str) -> LinkPolicy:
    """The policy of a connection to the real API (public), its links resolving to ``link_addresses``."""

    def resolve(host: str, port: int) -> Sequence[tuple[Any, ...]]:
        return answers("104.18.1.1")(host, port) if host == "client.camb.ai" else answers(*link_addresses)(host, port)

    return LinkPolicy(API, resolve=resolve)


# --- the rule, on parsed addresses ----------------------------------------------------------------


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_addresses_that_are_not_public_are_refused(address: str) -> None:
    assert not is_public_address(parse_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert is_public_address(parse_address(address))


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("https://169.254.169.254/latest/meta-data/?token=bearer-secret", "169.254.169.254"),
        ("https://metadata.google.internal/computeMetadata/v1/?token=bearer-secret", "169.254.169.254"),
        ("https://[::1]:8080/x?token=bearer-secret", "::1"),
        ("https://10.0.0.5/x?token=bearer-secret", "10.0.0.5"),
        ("https://storage.example/x?token=bearer-secret", "::ffff:10.0.0.5"),
    ],
)
def test_a_link_that_resolves_to_an_internal_address_is_refused_naming_only_its_host(url: str, address: str) -> None:
    policy = public_api(address)
    parts = policy.check_url(url)  # the scheme is fine
    with pytest.raises(CambLinkNotAllowedError) as caught:
        policy.addresses(str(parts.hostname), 443, "https")
    assert f"host {parts.hostname!r}" in str(caught.value)
    assert "bearer-secret" not in str(caught.value) and "/x" not in str(caught.value)


def test_only_the_public_addresses_of_a_mixed_answer_are_kept() -> None:
    kept = public_api("10.0.0.5", "8.8.8.8", "169.254.169.254").addresses("storage.example", 443, "https")
    assert [info[4][0] for info in kept] == ["8.8.8.8"]


@pytest.mark.parametrize(
    "url",
    ["http://storage.example/x", "file:///etc/passwd", "ftp://storage.example/x", "gopher://x/", "https:///x"],
)
def test_links_that_are_not_https_are_refused_before_anything_is_resolved(url: str) -> None:
    def resolve(host: str, port: int) -> Sequence[tuple[Any, ...]]:
        raise AssertionError("nothing may be resolved")

    with pytest.raises(CambLinkNotAllowedError):
        LinkPolicy(API, resolve=resolve).check_url(url)


def test_a_redirect_from_https_to_http_is_refused() -> None:
    policy = LinkPolicy("http://127.0.0.1:8765", resolve=answers("127.0.0.1"))
    policy.check_url("http://127.0.0.1:9/x")  # plain http to the local API's own address: allowed
    with pytest.raises(CambLinkNotAllowedError, match="from https to plain http"):
        policy.check_url("http://127.0.0.1:9/x", redirected_from="https://127.0.0.1:8/x")


def test_a_local_api_allows_its_own_address_and_no_other() -> None:
    policy = LinkPolicy("http://127.0.0.1:8765", resolve=answers("127.0.0.1", "::1"))
    assert [info[4][0] for info in policy.addresses("localhost", 80, "http")] == ["127.0.0.1", "::1"]
    only_v4 = LinkPolicy("http://127.0.0.1:8765", resolve=lambda host, port: answers(host)(host, port))
    for host in ("127.0.0.2", "::1", "10.0.0.5", "169.254.169.254"):
        with pytest.raises(CambLinkNotAllowedError):
            only_v4.addresses(host, 80, "http")
    with pytest.raises(CambLinkNotAllowedError):  # a public host, but over plain http
        only_v4.addresses("8.8.8.8", 80, "http")
    assert only_v4.addresses("8.8.8.8", 443, "https")


def test_an_https_api_on_a_private_address_allows_that_address_only() -> None:
    policy = LinkPolicy("https://10.1.2.3/apis", resolve=lambda host, port: answers(host)(host, port))
    assert policy.addresses("10.1.2.3", 443, "https")
    with pytest.raises(CambLinkNotAllowedError):
        policy.addresses("10.1.2.4", 443, "https")
    with pytest.raises(CambLinkNotAllowedError, match="plain http"):
        policy.check_url("http://10.1.2.3/x")


# --- over real HTTP on loopback -------------------------------------------------------------------


@pytest.fixture
def hook(camb_standin: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[CambHook]:
    """A hook on the stand-in's API (127.0.0.1), with one quick retry."""
    connection = json.loads(camb_standin.connection_json())
    connection["extra"] = {"retries": 1, "backoff": 0.01, "backoff_max": 0.05, "timeout": 5}
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_DEFAULT", json.dumps(connection))
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with CambHook() as hook:
        yield hook


def serve(body: bytes) -> Any:
    def script(request: Received, reply: Reply) -> None:
        reply.head(200, {"Content-Type": "audio/wav", "Content-Length": str(len(body))})
        reply.write(body)

    return script


def test_previews_on_another_loopback_address_are_refused_and_nothing_reaches_it(
    camb_standin_factory: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    standin = camb_standin_factory(pending_seconds=0, storage_host="127.0.0.2")
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_DEFAULT", standin.connection_json())
    run_id = CambHook().get_task_status("text-to-voice", standin.add_task(status="SUCCESS")).run_id
    operator = TextToVoiceResultOperator(task_id="download", run_id=run_id, destination=str(tmp_path))
    with pytest.raises(CambLinkNotAllowedError, match=r"host '127\.0\.0\.2'") as caught:
        operator.execute({"ti": None})
    assert "token" not in str(caught.value)
    assert standin.requests("preview") == []  # nothing was sent to the refused address
    assert list(tmp_path.iterdir()) == []


def test_a_redirect_to_an_internal_address_is_not_followed(hook: CambHook) -> None:
    with HostileServer(serve(b"internal secret"), host="127.0.0.2") as internal:
        with HostileServer(redirect(f"{internal.url}/internal/secret")) as storage:
            with pytest.raises(CambLinkNotAllowedError, match=r"host '127\.0\.0\.2'"):
                hook.download_link(f"{storage.url}/file.wav?token=bearer-secret", io.BytesIO())
            assert [r.target for r in storage.received] == ["/file.wav?token=bearer-secret"]
        assert internal.received == []


def test_a_redirect_the_rule_allows_is_followed(hook: CambHook) -> None:
    with HostileServer(serve(b"RIFF-the-audio")) as second, HostileServer(redirect(f"{second.url}/moved.wav")) as first:
        target = io.BytesIO()
        downloaded = hook.download_link(f"{first.url}/file.wav", target)
    assert target.getvalue() == b"RIFF-the-audio" and downloaded.bytes == 14
    assert [r.target for r in second.received] == ["/moved.wav"]


def test_a_redirect_from_https_to_http_is_not_followed(hook: CambHook, monkeypatch: pytest.MonkeyPatch) -> None:
    with HostileServer(serve(b"plain")) as plain, HostileServer(redirect(f"{plain.url}/x"), tls=True) as secure:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", secure.ca_file)
        with pytest.raises(CambLinkNotAllowedError, match="from https to plain http"):
            hook.download_link(f"{secure.url}/file.wav", io.BytesIO())
        assert len(secure.received) == 1  # the https hop was fetched, its certificate checked
        assert plain.received == []


def test_an_https_link_to_another_loopback_address_is_refused_before_connecting(hook: CambHook) -> None:
    with HostileServer(serve(b"internal"), host="127.0.0.2", tls=True) as internal:
        with pytest.raises(CambLinkNotAllowedError, match=r"host '127\.0\.0\.2'"):
            hook.download_link(f"{internal.url}/file.wav", io.BytesIO())
        assert internal.received == []


def test_an_https_link_is_fetched_with_its_certificate_checked(hook: CambHook, monkeypatch: pytest.MonkeyPatch) -> None:
    with HostileServer(serve(b"RIFF-secure"), tls=True) as secure:
        with pytest.raises(CambConnectionError, match="SSLError"):  # not trusted yet: refused by TLS
            hook.download_link(f"{secure.url}/file.wav", io.BytesIO())
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", secure.ca_file)
        target = io.BytesIO()
        hook.download_link(f"{secure.url}/file.wav", target)
    assert target.getvalue() == b"RIFF-secure"


def test_the_connection_goes_to_the_address_that_was_checked(hook: CambHook) -> None:
    """No second DNS answer: the host is resolved once per connection, and that address is the one connected to."""
    asked: list[str] = []

    def resolve(host: str, port: int) -> Sequence[tuple[Any, ...]]:
        asked.append(host)
        return answers("127.0.0.1")(host, port)  # a name no real DNS knows, pinned to the API's address

    hook.link_policy = LinkPolicy(hook.settings.base_url, resolve=resolve)
    with HostileServer(serve(b"RIFF")) as storage:
        port = storage.url.rsplit(":", 1)[1]
        target = io.BytesIO()
        hook.download_link(f"http://storage.invalid:{port}/file.wav", target)
        (received,) = storage.received
    assert target.getvalue() == b"RIFF"
    assert received.headers["host"] == f"storage.invalid:{port}"  # the name travels; the address was ours
    assert asked.count("storage.invalid") == 1


def test_through_a_proxy_a_refused_link_reaches_neither_proxy_nor_host(
    hook: CambHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    with HostileServer(serve(b"internal"), host="127.0.0.2") as internal, HostileServer(serve(b"RIFF")) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with pytest.raises(CambLinkNotAllowedError, match=r"host '127\.0\.0\.2'"):
            hook.download_link(f"{internal.url}/file.wav", io.BytesIO())
        assert proxy.received == [] and internal.received == []
        target = io.BytesIO()
        hook.download_link("http://127.0.0.1:9/file.wav", target)  # allowed: the proxy fetches it
        assert target.getvalue() == b"RIFF"
        assert [r.target for r in proxy.received] == ["http://127.0.0.1:9/file.wav"]
