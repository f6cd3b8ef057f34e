/** What placement knows of a worker (from its last heartbeat). */
export interface WorkerLoad {
  readonly workerId: string;
  readonly capacity: number;
  readonly activeCalls: number;
  readonly atMs: number;
  readonly leaving: boolean;
}

/**
 * Peers to ask for a call this worker cannot take, most free slots first (ties by id, so the
 * order is stable). Skips this worker, leaving workers, full ones, and ones not heard from
 * within `staleMs` (dead or gone: asking them would only wait for a timeout).
 */
export function rankPeers(
  workers: Iterable<WorkerLoad>,
  selfId: string,
  nowMs: number,
  staleMs: number,
): string[] {
  const candidates: { id: string; free: number }[] = [];
  for (const w of workers) {
    if (w.workerId === selfId || w.leaving || nowMs - w.atMs > staleMs) continue;
    const free = w.capacity - w.activeCalls;
    if (free > 0) candidates.push({ id: w.workerId, free });
  }
  candidates.sort((a, b) => b.free - a.free || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return candidates.map((c) => c.id);
}
