"""Typed errors raised by the inner modules.

Only `server.py` and `cli.py` turn these into messages for a person; every
other module raises them and never swallows them silently.
"""

from __future__ import annotations


class InklingError(Exception):
    """Base class: the message is written for the user, not for a developer."""


class ModelError(InklingError):
    """The model file is missing, unreadable, not GGUF, or llama.cpp refused it."""


class ModelNotReadyError(InklingError):
    """A request arrived while the model is still loading (or failed to load)."""


class SettingsError(InklingError):
    """A setting could not be used; the message names the setting."""


class DocumentError(InklingError):
    """A request named a document the client never opened, or a bad position."""


class RequestCancelledError(InklingError):
    """Work stopped because the request was cancelled or superseded (named apart from
    `asyncio.CancelledError`, which the front ends meet too)."""
