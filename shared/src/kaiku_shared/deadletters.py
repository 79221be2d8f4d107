"""Operator tools for the dead-letter stream: list, and replay after a fix.

A dead letter keeps the original body and, in headers, the reason, the
original subject, stream and sequence. Replaying publishes the body again on
its original subject; consumers are idempotent (processed_events), so the
consumers that applied it the first time skip it and only the one that failed
tries again. The dead letter is removed once the replay is acknowledged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from .settings import KaikuSettings
from .tls import connect_nats


@dataclass(frozen=True)
class DeadLetter:
    sequence: int
    consumer: str
    reason: str
    original_subject: str
    original_stream: str
    original_sequence: str
    deliveries: str
    event_type: str | None
    event_id: str | None
    body: bytes


async def list_dead_letters(settings: KaikuSettings, consumer: str | None = None
                            ) -> list[DeadLetter]:
    nc = await connect_nats(settings)
    try:
        js = nc.jetstream()
        try:
            info = await js.stream_info(settings.dead_letter_stream)
        except NotFoundError:
            return []
        if info.state.messages == 0:
            return []
        subject = f"{settings.namespace}.dlq.*.{consumer}" if consumer else \
            f"{settings.namespace}.dlq.>"
        sub = await js.pull_subscribe(
            subject, stream=settings.dead_letter_stream,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=30))
        letters: list[DeadLetter] = []
        try:
            while True:
                try:
                    batch = await sub.fetch(200, timeout=1)
                except (TimeoutError, nats.errors.TimeoutError):
                    break
                for message in batch:
                    letters.append(_parse(message))
                    await message.ack()
        finally:
            await sub.unsubscribe()
        return letters
    finally:
        await nc.close()


def _parse(message) -> DeadLetter:
    headers = message.headers or {}
    event_type = event_id = None
    try:
        body = json.loads(message.data)
        if isinstance(body, dict):
            event_type, event_id = body.get("event_type"), body.get("event_id")
    except ValueError:
        pass
    return DeadLetter(
        sequence=message.metadata.sequence.stream,
        consumer=message.subject.rsplit(".", 1)[-1],
        reason=headers.get("Kaiku-Dead-Letter-Reason", ""),
        original_subject=headers.get("Kaiku-Original-Subject", ""),
        original_stream=headers.get("Kaiku-Original-Stream", ""),
        original_sequence=headers.get("Kaiku-Original-Sequence", ""),
        deliveries=headers.get("Kaiku-Deliveries", ""),
        event_type=event_type,
        event_id=event_id,
        body=message.data,
    )


async def replay_dead_letters(settings: KaikuSettings, sequences: list[int] | None = None,
                              consumer: str | None = None) -> list[int]:
    """Re-publish the chosen dead letters (all when ``sequences`` is None)."""
    letters = await list_dead_letters(settings, consumer)
    chosen = [d for d in letters if sequences is None or d.sequence in sequences]
    nc = await connect_nats(settings)
    replayed = []
    try:
        js = nc.jetstream()
        for letter in chosen:
            if not letter.original_subject:
                continue
            await js.publish(letter.original_subject, letter.body,
                             headers={"Nats-Msg-Id": f"replay:{settings.dead_letter_stream}:"
                                                     f"{letter.sequence}",
                                      "Kaiku-Replayed-From": str(letter.sequence)})
            await js.delete_msg(settings.dead_letter_stream, letter.sequence)
            replayed.append(letter.sequence)
    finally:
        await nc.close()
    return replayed
