import { decodeMessage, Speaker, UnitChunk } from '@duet/protocol';
import { jetstream as names, subjects } from '@duet/runtime';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';

/**
 * Reads a call's real user chunks from the DUET_UNITS stream from `startMs` on (an ephemeral
 * consumer filtered on the call's user subject). The first chunk of each index wins, as in the
 * engine (a later copy is a duplicate).
 */
export async function fetchRealUserChunks(
  nc: NatsConnection,
  callId: string,
  startMs: number,
  unitsPerChunk: number,
): Promise<{ chunks: Map<number, number[]>; bad: number }> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.consumers.add(names.unitsStream, {
    filter_subject: subjects.userUnits(callId),
    deliver_policy: DeliverPolicy.StartTime,
    opt_start_time: new Date(Math.max(0, startMs)).toISOString(),
    ack_policy: AckPolicy.None,
    inactive_threshold: 30_000_000_000,
  });
  const chunks = new Map<number, number[]>();
  let bad = 0;
  try {
    const pending = info.num_pending;
    if (pending > 0) {
      const consumer = await jetstream(nc).consumers.get(names.unitsStream, info.name);
      const messages = await consumer.fetch({ max_messages: pending, expires: 2_000 });
      let seen = 0;
      for await (const m of messages) {
        seen++;
        try {
          const c = decodeMessage(UnitChunk, 'UnitChunk', m.data);
          if (c.callId !== callId || c.speaker !== Speaker.SPEAKER_USER || c.units.length !== unitsPerChunk) {
            bad++;
          } else if (!chunks.has(Number(c.chunkIndex))) {
            chunks.set(Number(c.chunkIndex), c.units);
          }
        } catch {
          bad++;
        }
        if (seen >= pending) break;
      }
    }
  } finally {
    // Not awaited: the resume should not wait for the clean-up (inactive_threshold is the backstop).
    void jsm.consumers.delete(names.unitsStream, info.name).catch(() => undefined);
  }
  return { chunks, bad };
}
