// Publishes into a JetStream stream with acknowledgement, so that a message the stream missed
// (its leader moving to another node, a node stopping) is sent again instead of being lost. The
// message also reaches core subscribers as any publish does; a resend may reach them twice, and
// the stream itself keeps one copy (the message id is deduplicated by the server).

import { type JetStreamClient, jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';

export interface StreamPublisherOptions {
  /** Attempts per message (default 6: resends over ~3 s, longer than a stream leader election). */
  readonly attempts?: number;
  /** Wait for each acknowledgement (default 2 s). */
  readonly ackTimeoutMs?: number;
  /** Pause before a resend, doubled each time (default 100 ms). */
  readonly backoffMs?: number;
  /** A resend happened (for a metric). */
  readonly onRetry?: (subject: string, error: unknown) => void;
  /** Every attempt failed: the stream does not hold the message (for a metric and a log line). */
  readonly onGiveUp?: (subject: string, error: unknown) => void;
}

export class StreamPublisher {
  readonly #js: JetStreamClient;
  readonly #attempts: number;
  readonly #ackTimeoutMs: number;
  readonly #backoffMs: number;
  readonly #options: StreamPublisherOptions;
  readonly #inFlight = new Set<Promise<void>>();

  constructor(nc: NatsConnection, options: StreamPublisherOptions = {}) {
    this.#js = jetstream(nc);
    this.#attempts = options.attempts ?? 6;
    this.#ackTimeoutMs = options.ackTimeoutMs ?? 2_000;
    this.#backoffMs = options.backoffMs ?? 100;
    this.#options = options;
  }

  /** Messages not yet acknowledged (or given up). */
  get pending(): number {
    return this.#inFlight.size;
  }

  /** Sends at once and returns; acknowledgement and resends happen in the background. */
  publish(subject: string, data: Uint8Array, msgId: string): void {
    const p = this.#send(subject, data, msgId).finally(() => this.#inFlight.delete(p));
    this.#inFlight.add(p);
  }

  /** Resolves once every message was acknowledged or given up (a clean shutdown waits for it). */
  async flush(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  async #send(subject: string, data: Uint8Array, msgId: string): Promise<void> {
    let lastError: unknown;
    for (let attempt = 0; attempt < this.#attempts; attempt++) {
      if (attempt > 0) {
        this.#options.onRetry?.(subject, lastError);
        await new Promise((r) => setTimeout(r, this.#backoffMs * 2 ** (attempt - 1)));
      }
      try {
        await this.#js.publish(subject, data, { msgID: msgId, timeout: this.#ackTimeoutMs });
        return;
      } catch (error) {
        lastError = error;
      }
    }
    this.#options.onGiveUp?.(subject, lastError);
  }
}
