"""A tiny SMTP server for tests: accepts messages and keeps them, as Mailpit would."""

from __future__ import annotations

import asyncio
import email
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import Message


class SmtpSink:
    """Just enough SMTP (RFC 5321) to accept messages, as Mailpit does."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay  # seconds to take over each message, like a slow server
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def reply(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        reply("220 sink ready")
        sender, recipients = "", list[str]()
        while line := (await reader.readline()).decode().rstrip("\r\n"):
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                reply("250-sink\r\n250 8BITMIME")
            elif verb == "MAIL":
                sender, recipients = line.split(":", 1)[1].strip(), []
                reply("250 OK")
            elif verb == "RCPT":
                recipients.append(line.split(":", 1)[1].strip())
                reply("250 OK")
            elif verb == "DATA":
                reply("354 go ahead")
                data = await reader.readuntil(b"\r\n.\r\n")
                await asyncio.sleep(self.delay)
                self.messages.append(email.message_from_bytes(data[:-5]))
                self.envelopes.append((sender, recipients))
                reply("250 queued")
            elif verb == "QUIT":
                reply("221 bye")
                await writer.drain()
                break
            else:
                reply("250 OK")
            await writer.drain()
        writer.close()


@asynccontextmanager
async def serve_smtp(delay: float = 0.0) -> AsyncIterator[tuple[SmtpSink, int]]:
    sink = SmtpSink(delay)
    server = await asyncio.start_server(sink.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield sink, port
