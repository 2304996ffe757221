"""A development mailbox: an SMTP server (aiosmtpd) that keeps every message as a .eml file."""

from __future__ import annotations

import asyncio
import time
from email import message_from_bytes, policy
from pathlib import Path

from aiosmtpd.controller import Controller


class KeepMail:
    """aiosmtpd handler: write each message to a directory and print a one-line summary."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        data = envelope.original_content or envelope.content
        name = f"{time.time_ns()}.eml"
        (self.directory / name).write_bytes(data)
        msg = message_from_bytes(data, policy=policy.default)
        print(f"mail to {', '.join(envelope.rcpt_tos)}: {msg['subject']} ({name})", flush=True)
        return "250 Message accepted for delivery"


def run_mailbox(host: str, port: int) -> None:
    from app.settings import get_settings

    directory = get_settings().var_dir / "mailbox"
    controller = Controller(KeepMail(directory), hostname=host, port=port)
    controller.start()
    print(f"Development mailbox on {host}:{port}; messages are kept in {directory}", flush=True)
    try:
        asyncio.run(asyncio.Event().wait())
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
