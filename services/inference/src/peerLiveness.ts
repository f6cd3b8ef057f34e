/**
 * Which peer workers are dead, by the clock: a peer whose last heartbeat was for tick h is
 * dead at tick n once n - h >= timeoutTicks (it stepped none of the ticks since), or at once
 * when its last heartbeat said it is leaving. A peer that heartbeats again is alive again.
 */
export class PeerLiveness {
  private readonly lastTick = new Map<string, { tick: number; leaving: boolean }>();

  constructor(
    readonly selfId: string,
    readonly timeoutTicks: number,
  ) {}

  heard(workerId: string, tick: number, leaving: boolean): void {
    if (workerId === this.selfId) return;
    const prev = this.lastTick.get(workerId);
    if (prev && prev.tick > tick) return;
    this.lastTick.set(workerId, { tick, leaving });
  }

  /** Peers dead at tick `seq`. */
  dead(seq: number): string[] {
    const out: string[] = [];
    for (const [id, p] of this.lastTick) if (p.leaving || seq - p.tick >= this.timeoutTicks) out.push(id);
    return out;
  }

  /** Stops tracking a peer (its calls were all taken over). */
  forget(workerId: string): void {
    this.lastTick.delete(workerId);
  }
}
