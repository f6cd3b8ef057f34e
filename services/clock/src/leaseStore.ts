// The lease in KV (duet_clock, key "leader"): reads and compare-and-set writes of ClockLease.
import { ClockLease, decodeMessage } from '@duet/protocol';
import type { KV } from '@duet/runtime';

export const LEASE_KEY = 'leader';

export interface LeaseEntry {
  /** Undefined when the stored bytes are not a ClockLease. */
  readonly lease: ClockLease | undefined;
  readonly revision: number;
}

/** JetStream "wrong last sequence": another writer changed the key since `revision`. */
const WRONG_LAST_SEQUENCE = new Set([10071, 10164]);

export function isCasConflict(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' && WRONG_LAST_SEQUENCE.has(code);
}

export class LeaseStore {
  constructor(private readonly kv: KV) {}

  /** The current lease, or null when the key does not exist (or was deleted). */
  async get(): Promise<LeaseEntry | null> {
    const entry = await this.kv.get(LEASE_KEY);
    if (!entry || entry.operation !== 'PUT') return null;
    let lease: ClockLease | undefined;
    try {
      lease = decodeMessage(ClockLease, 'ClockLease', entry.value);
    } catch {
      lease = undefined;
    }
    return { lease, revision: entry.revision };
  }

  /** Creates the key; throws (a CAS conflict) when it already exists. Returns the revision. */
  create(lease: ClockLease): Promise<number> {
    return this.kv.create(LEASE_KEY, ClockLease.encode(lease).finish());
  }

  /** Writes `lease` only if the key is still at `revision`. Returns the new revision. */
  update(lease: ClockLease, revision: number): Promise<number> {
    return this.kv.update(LEASE_KEY, ClockLease.encode(lease).finish(), revision);
  }
}
