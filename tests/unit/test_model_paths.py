"""modelPath can come from a client setting: what it names is checked before llama.cpp opens it."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from lsp_server.errors import ModelError
from lsp_server.models import check_model_file


def refused(path: Path) -> str:
    with pytest.raises(ModelError) as caught:
        check_model_file(path)
    return str(caught.value)


def test_a_gguf_file_is_accepted_and_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "m.gguf").write_bytes(b"GGUF" + bytes(20))
    monkeypatch.chdir(tmp_path)
    assert check_model_file(Path("m.gguf")) == tmp_path / "m.gguf"


def test_missing_and_non_gguf_files(tmp_path: Path) -> None:
    assert "does not exist" in refused(tmp_path / "none.gguf")
    assert "does not exist" in refused(tmp_path / "none" / "deeper.gguf")
    (tmp_path / "notes.txt").write_text("hello")
    assert "does not exist" in refused(tmp_path / "notes.txt" / "x.gguf")  # a file used as a directory
    assert "not a GGUF file" in refused(tmp_path / "notes.txt")
    (tmp_path / "empty.gguf").write_bytes(b"")
    assert "not a GGUF file" in refused(tmp_path / "empty.gguf")


def test_directories_devices_pipes_and_sockets_are_refused_without_reading(tmp_path: Path) -> None:
    assert "a directory" in refused(tmp_path)
    assert "a character device" in refused(Path("/dev/zero"))
    fifo = tmp_path / "pipe.gguf"
    os.mkfifo(fifo)
    outcome: list[str] = []
    reader = threading.Thread(target=lambda: outcome.append(refused(fifo)), daemon=True)
    reader.start()
    reader.join(5)  # opening a pipe without a writer would block forever
    assert outcome and "a named pipe" in outcome[0]
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "sock.gguf"))
        assert "a socket" in refused(tmp_path / "sock.gguf")


def test_symlinks_are_judged_by_their_target(tmp_path: Path) -> None:
    (tmp_path / "real.gguf").write_bytes(b"GGUF" + bytes(20))
    (tmp_path / "link.gguf").symlink_to(tmp_path / "real.gguf")
    (tmp_path / "to-dev.gguf").symlink_to("/dev/zero")
    (tmp_path / "dangling.gguf").symlink_to(tmp_path / "gone.gguf")
    assert check_model_file(tmp_path / "link.gguf") == tmp_path / "link.gguf"
    assert "a character device" in refused(tmp_path / "to-dev.gguf")
    assert "does not exist" in refused(tmp_path / "dangling.gguf")


def test_absurd_names_get_a_message_not_a_crash(tmp_path: Path) -> None:
    message = refused(tmp_path / ("x" * 5000 + ".gguf"))
    assert "cannot be used" in message and len(message) < 400
