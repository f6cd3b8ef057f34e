import { jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstream as names, subjects } from './subjects.js';

export type { KV } from '@nats-io/kv';

export interface DuetJetStream {
  readonly calls: KV;
  readonly history: KV;
  readonly workers: KV;
  readonly clock: KV;
}

/**
 * Creates (idempotently) the streams and KV buckets Duet relies on and opens the buckets.
 * `replicas` is the JetStream replication factor (1 on a single server, 3 on a cluster).
 */
export async function ensureJetStream(
  nc: NatsConnection,
  options: { replicas?: number } = {},
): Promise<DuetJetStream> {
  const replicas = options.replicas ?? 1;
  const jsm = await jetstreamManager(nc);
  const unitsConfig = {
    name: names.unitsStream,
    subjects: [subjects.allUserUnits],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    // Long enough to resume any call a worker held; short enough to stay small.
    max_age: 10 * 60 * 1e9,
    num_replicas: replicas,
  };
  try {
    await jsm.streams.info(names.unitsStream);
  } catch {
    try {
      await jsm.streams.add(unitsConfig);
    } catch (error) {
      // Another replica created it at the same moment.
      await jsm.streams.info(names.unitsStream).catch(() => {
        throw error;
      });
    }
  }
  const kvm = new Kvm(nc);
  const open = (name: string, history = 1, ttl = 0) =>
    kvm.create(name, { history, replicas, ...(ttl > 0 ? { ttl } : {}) });
  const [calls, history, workers, clock] = await Promise.all([
    open(names.callsBucket),
    open(names.historyBucket),
    open(names.workersBucket),
    open(names.clockBucket),
  ]);
  return { calls, history, workers, clock };
}
