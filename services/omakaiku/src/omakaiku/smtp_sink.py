"""`python -m omakaiku smtp-sink --dir DIR [--host H] [--port P]`: a local SMTP
server for development and tests that stores every received message as an .eml
file in DIR and does nothing else (no relaying, no other service). Log lines say
only that a message was stored, never to whom."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
import uuid
from pathlib import Path

from aiosmtpd.controller import Controller

log = logging.getLogger("omakaiku.smtp_sink")


class MaildirHandler:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd API
        name = f"{uuid.uuid4().hex}.eml"
        temporary = self.directory / f".{name}.tmp"
        temporary.write_bytes(envelope.original_content or envelope.content)
        os.replace(temporary, self.directory / name)  # readers never see half a message
        log.info("message stored", extra={"file": name})
        return "250 Message accepted for delivery"


def start(directory: Path, host: str = "127.0.0.1", port: int = 0) -> Controller:
    """Start a sink in this process (tests); ``controller.port`` is the bound port."""
    # aiosmtpd logs every command, recipients included, at INFO.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    if port == 0:
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
    controller = Controller(MaildirHandler(directory), hostname=host, port=port)
    controller.start()
    return controller


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m omakaiku smtp-sink")
    parser.add_argument("--dir", default=os.environ.get("KAIKU_OMAKAIKU_SMTP_SINK_DIR",
                                                        ".kaiku/mail"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int,
                        default=int(os.environ.get("KAIKU_OMAKAIKU_SMTP_PORT", "8025")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    controller = start(Path(args.dir), args.host, args.port)
    log.info("SMTP sink listening on %s:%s, storing messages in %s", args.host,
             controller.port, args.dir)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    controller.stop()
