"""`inkling serve --tcp` listens on loopback unless told otherwise, and says so when told."""

from __future__ import annotations

import pytest

from lsp_server.cli import build_parser
from lsp_server.net import is_loopback


def test_tcp_defaults_to_loopback() -> None:
    args = build_parser().parse_args(["serve", "--tcp"])
    assert args.host == "127.0.0.1" and is_loopback(args.host)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.8.9.10", "::1"])
def test_loopback_addresses(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "example.com", ""])
def test_anything_else_is_reachable_from_outside_and_warned_about(host: str) -> None:
    assert not is_loopback(host)
