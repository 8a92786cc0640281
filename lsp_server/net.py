"""Addresses: whether a server bound to one is reachable from other machines."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """`localhost` and loopback addresses (127.0.0.0/8, ::1); anything else is reachable."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
