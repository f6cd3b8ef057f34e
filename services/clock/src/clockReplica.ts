// One clock replica: a timer armed for the exact wall-clock instant of the next tick (never a
// chained interval, so no drift), the lease CAS that makes exactly one replica publish each seq,
// and the standby's takeover check. Decisions come from election.ts; this file does the I/O.
import { type ClockLease, Tick } from '@duet/protocol';
import { type Logger, type NatsConnection, subjects } from '@duet/runtime';
import { decideTick, type LeaseView, phaseAt, type TickPhase } from './election.js';
import { isCasConflict, type LeaseEntry, type LeaseStore } from './leaseStore.js';
import type { ClockMetrics, LeaseErrorReason } from './metrics.js';
import type { TickSchedule } from './tickSchedule.js';

/** The lease was written by replicas with another schedule: running would fork the clock. */
export class ClockMismatchError extends Error {
  override readonly name = 'ClockMismatchError';
}

export interface ClockReplicaOptions {
  readonly self: string;
  readonly schedule: TickSchedule;
  readonly takeoverMs: number;
  readonly store: LeaseStore;
  readonly nc: NatsConnection;
  readonly log: Logger;
  readonly metrics: ClockMetrics;
  readonly now?: () => number;
}

const WARN_EVERY_MS = 5_000;

export class ClockReplica {
  readonly #o: ClockReplicaOptions;
  readonly #now: () => number;
  /** Our last successful lease write: defined exactly while we believe we hold the lease. */
  #held: { lease: ClockLease; revision: number } | undefined;
  /** Highest seq whose due phase ran. */
  #handledSeq = Number.NEGATIVE_INFINITY;
  /** Seq whose takeover check is pending. */
  #waitingSeq: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #armedFor = 0;
  #busy: Promise<void> = Promise.resolve();
  #stopped = false;
  #ready = false;
  readonly #lastWarn = new Map<string, number>();

  constructor(options: ClockReplicaOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  get ready(): boolean {
    return this.#ready;
  }

  get isLeader(): boolean {
    return this.#held !== undefined;
  }

  /** Reads (or first creates) the lease, refuses a foreign schedule, then starts the tick loop. */
  async start(): Promise<void> {
    const { schedule, self, store, log } = this.#o;
    let entry = await store.get();
    if (!entry) {
      // The chunk in progress already had its tick: mark it claimed and publish from the next one.
      const lease = this.#lease(schedule.seqAt(this.#now()));
      try {
        this.#setHeld({ lease, revision: await store.create(lease) });
        log.info({ seq: Number(lease.seq) }, 'created the clock lease: leading');
      } catch (error) {
        if (!isCasConflict(error)) throw error;
        entry = await store.get();
        if (!entry) throw new Error('clock lease neither creatable nor readable');
      }
    }
    if (entry) {
      if (entry.lease && !this.#matches(entry.lease)) {
        throw new ClockMismatchError(
          `the clock lease has chunk_ms=${entry.lease.chunkMs} epoch_ms=${entry.lease.epochMs} but this ` +
            `replica has DUET_CLOCK_CHUNK_MS=${schedule.chunkMs} DUET_CLOCK_EPOCH_MS=${schedule.epochMs}`,
        );
      }
      log.info(
        { holder: entry.lease?.publisher, seq: Number(entry.lease?.seq ?? -1), self },
        'joined the clock as standby',
      );
    }
    this.#handledSeq = schedule.seqAt(this.#now());
    this.#ready = true;
    this.#arm();
  }

  /** SIGTERM: stop ticking; a leader marks the lease released so a standby claims the next tick on time. */
  async drain(): Promise<void> {
    this.close();
    await this.#busy;
    const held = this.#held;
    if (!held) return;
    this.#setHeld(undefined);
    try {
      await this.#o.store.update({ ...held.lease, released: true }, held.revision);
      this.#o.log.info({ seq: Number(held.lease.seq) }, 'released the clock lease');
    } catch (error) {
      // A standby still takes over, TAKEOVER_MS late.
      this.#error('kv_update', error, 'could not release the lease');
    }
  }

  close(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(): void {
    if (this.#stopped) return;
    const { schedule, takeoverMs } = this.#o;
    const now = this.#now();
    const current = schedule.seqAt(now);
    // Recomputed from the wall clock every time: a late or early timer never shifts later ticks.
    // A step that ended after the next tick was due fires at once (that tick is still current).
    const at =
      this.#waitingSeq === current
        ? schedule.timeOf(current) + takeoverMs
        : schedule.timeOf(this.#handledSeq + 1);
    this.#armedFor = at;
    this.#timer = setTimeout(() => this.#run(), Math.max(0, at - now));
  }

  #run(): void {
    this.#timer = undefined;
    const lateMs = this.#now() - this.#armedFor;
    if (lateMs > this.#o.takeoverMs)
      this.#warn('late_timer', { lateMs }, 'tick timer fired late (event loop stalled)');
    this.#busy = this.#step()
      .catch((error: unknown) => this.#error('internal', error, 'tick step failed'))
      .finally(() => this.#arm());
  }

  async #step(): Promise<void> {
    if (this.#stopped) return;
    const { schedule, takeoverMs } = this.#o;
    const now = this.#now();
    const seq = schedule.seqAt(now);
    const phase = phaseAt(now, schedule.timeOf(seq), takeoverMs);
    if (this.#waitingSeq !== undefined && this.#waitingSeq < seq) {
      // The takeover check for a seq ran past the next tick: that seq, if still unclaimed, is a gap.
      // Logged every time (at most once per chunk): tests and operators explain gaps with it.
      this.#o.log.warn(
        { missedFrom: this.#waitingSeq, missedTo: this.#waitingSeq, seq },
        'takeover check was late: not claiming a stale tick',
      );
    }
    if (seq > this.#handledSeq) {
      // After a suspension only the current seq is claimed; the skipped ones stay a gap that
      // consumers count (a burst of stale ticks would be worse than a gap).
      const skipped = seq - this.#handledSeq - 1;
      if (skipped > 0 && Number.isFinite(this.#handledSeq)) {
        this.#o.log.warn(
          { missedFrom: this.#handledSeq + 1, missedTo: seq - 1, skipped, seq },
          'tick loop was late: not claiming stale ticks',
        );
      }
      this.#handledSeq = seq;
      this.#waitingSeq = undefined;
      await this.#settle(seq, phase);
    } else if (this.#waitingSeq === seq && phase === 'takeover') {
      this.#waitingSeq = undefined;
      await this.#settle(seq, 'takeover');
    }
    // Otherwise the timer fired early (before T(seq+1)): #arm re-arms for the remaining time.
  }

  /** Decides about tick `seq` and, when it is ours to claim, claims it by CAS and publishes it. */
  async #settle(seq: number, phase: TickPhase): Promise<void> {
    const { store, self } = this.#o;
    let entry: LeaseEntry | null;
    if (this.#held) {
      entry = this.#held;
    } else {
      try {
        entry = await store.get();
      } catch (error) {
        this.#error('kv_get', error, 'could not read the lease');
        if (phase === 'due') this.#waitingSeq = seq;
        return;
      }
    }
    let view: LeaseView;
    if (!entry) {
      view = { seq: -1, publisher: '', released: false };
    } else if (!entry.lease) {
      this.#error('decode', undefined, 'the lease is not a ClockLease: it will be overwritten');
      view = { seq: -1, publisher: '', released: false };
    } else if (!this.#matches(entry.lease)) {
      this.#error('config_mismatch', undefined, 'the lease has another chunk_ms/epoch_ms: not claiming');
      return;
    } else {
      view = {
        seq: Number(entry.lease.seq),
        publisher: entry.lease.publisher,
        released: entry.lease.released,
      };
    }

    const decision = decideTick(view, seq, self, phase);
    if (decision.kind === 'skip') return;
    if (decision.kind === 'wait') {
      this.#waitingSeq = seq;
      return;
    }
    const lease = this.#lease(seq);
    const claimStart = this.#now();
    try {
      const revision = entry ? await store.update(lease, entry.revision) : await store.create(lease);
      const tookMs = this.#now() - claimStart;
      if (tookMs > this.#o.takeoverMs) this.#warn('slow_claim', { seq, tookMs }, 'lease write was slow');
      this.#setHeld({ lease, revision });
    } catch (error) {
      this.#setHeld(undefined);
      if (isCasConflict(error)) {
        // Someone else claimed (or our view was stale): look again at the takeover instant.
        this.#o.metrics.leaseConflicts.inc();
        this.#o.log.info({ seq }, 'lost the lease race: standby');
        if (phase === 'due') this.#waitingSeq = seq;
      } else {
        // Unknown outcome: never publish on it (no duplicate); the next tick re-reads the lease.
        this.#error('kv_update', error, 'could not write the lease');
      }
      return;
    }
    this.#publish(seq);
    if (decision.failover) {
      this.#o.metrics.failovers.inc();
      this.#o.log.warn({ seq, from: view.publisher }, 'took over the clock from a silent leader');
    }
  }

  #publish(seq: number): void {
    const { schedule, self, nc, metrics } = this.#o;
    const scheduledAt = schedule.timeOf(seq);
    const tick = Tick.encode({
      seq: BigInt(seq),
      scheduledAtMs: BigInt(scheduledAt),
      chunkMs: schedule.chunkMs,
      publisher: self,
    }).finish();
    try {
      nc.publish(subjects.tick, tick);
    } catch (error) {
      this.#error('publish', error, 'could not publish the tick');
      return;
    }
    metrics.ticksPublished.inc();
    metrics.lateness.observe(this.#now() - scheduledAt);
  }

  #lease(seq: number): ClockLease {
    const { schedule, self } = this.#o;
    return {
      seq: BigInt(seq),
      publisher: self,
      chunkMs: schedule.chunkMs,
      epochMs: BigInt(schedule.epochMs),
      released: false,
    };
  }

  #matches(lease: ClockLease): boolean {
    const { schedule } = this.#o;
    return lease.chunkMs === schedule.chunkMs && Number(lease.epochMs) === schedule.epochMs;
  }

  #setHeld(held: { lease: ClockLease; revision: number } | undefined): void {
    this.#held = held;
    this.#o.metrics.isLeader.set(held ? 1 : 0);
  }

  #error(reason: LeaseErrorReason, error: unknown, msg: string): void {
    this.#o.metrics.leaseErrors.inc({ reason });
    this.#warn(reason, error === undefined ? {} : { err: error }, msg);
  }

  #warn(key: string, fields: Record<string, unknown>, msg: string): void {
    const now = this.#now();
    if (now - (this.#lastWarn.get(key) ?? Number.NEGATIVE_INFINITY) < WARN_EVERY_MS) return;
    this.#lastWarn.set(key, now);
    this.#o.log.warn(fields, msg);
  }
}
