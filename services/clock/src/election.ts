// Who publishes tick n. Every seq is claimed by exactly one successful compare-and-set of the
// lease, so this only decides when a replica *tries*; the CAS settles races. Pure, no I/O.

/** What a replica knows about the lease (KV "leader" in duet_clock). */
export interface LeaseView {
  /** Last claimed seq (-1 when unreadable, so any seq may be claimed over it). */
  readonly seq: number;
  readonly publisher: string;
  readonly released: boolean;
}

/** 'due': at T(n). 'takeover': at T(n) + takeover (the holder had its chance and missed it). */
export type TickPhase = 'due' | 'takeover';

export type TickDecision =
  | { readonly kind: 'claim'; readonly failover: boolean }
  /** Someone already claimed n: nothing to do. */
  | { readonly kind: 'skip' }
  /** The holder may still claim n on time: look again at the takeover instant. */
  | { readonly kind: 'wait' };

export function decideTick(lease: LeaseView, seq: number, self: string, phase: TickPhase): TickDecision {
  if (lease.seq >= seq) return { kind: 'skip' };
  // A released lease (holder drained) or our own lease: claim on time.
  if (lease.released || lease.publisher === self) return { kind: 'claim', failover: false };
  if (phase === 'due') return { kind: 'wait' };
  return { kind: 'claim', failover: true };
}

/** The phase of tick `seq` at `nowMs`, given T(seq) and the takeover delay. */
export function phaseAt(nowMs: number, scheduledMs: number, takeoverMs: number): TickPhase {
  return nowMs >= scheduledMs + takeoverMs ? 'takeover' : 'due';
}
