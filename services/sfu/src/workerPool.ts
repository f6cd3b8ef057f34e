// The mediasoup workers (one per core by default), each with a WebRtcServer so that every
// WebRTC transport of that worker shares one UDP port. A worker that dies is replaced; the
// calls it carried are ended by the owner through onWorkerDied.

import type { types } from 'mediasoup';
import type { Mediasoup } from './mediasoupLoader.js';

export interface WorkerSlot {
  readonly index: number;
  readonly worker: types.Worker;
  /** The worker's WebRtcServer (undefined in a pool made with webRtcServer: false). */
  readonly webRtcServer: types.WebRtcServer | undefined;
  /** Calls placed on this worker (for least-loaded placement). */
  calls: number;
}

export interface WorkerPoolOptions {
  readonly mediasoup: Mediasoup;
  readonly workers: number;
  readonly logLevel?: 'debug' | 'warn' | 'error' | 'none';
  readonly listenIp: string;
  readonly announcedIp?: string;
  /** Worker i's WebRtcServer listens on UDP rtcPortMin + i; plain transports use the rest of the range. */
  readonly rtcPortMin: number;
  readonly rtcPortMax: number;
  /** Give each worker a WebRtcServer (default true; the SIP bridge needs plain transports only). */
  readonly webRtcServer?: boolean;
  readonly onWorkerDied: (slot: WorkerSlot, error: Error) => void;
  readonly onWorkerReplaced?: (slot: WorkerSlot) => void;
  readonly log: {
    info(obj: object, msg: string): void;
    warn(obj: object, msg: string): void;
    error(obj: object, msg: string): void;
  };
}

export class WorkerPool {
  private readonly slots: (WorkerSlot | undefined)[];
  private closed = false;
  private stopping = false;

  private constructor(private readonly options: WorkerPoolOptions) {
    this.slots = new Array(options.workers).fill(undefined);
  }

  static async create(options: WorkerPoolOptions): Promise<WorkerPool> {
    const span = options.rtcPortMax - options.rtcPortMin + 1;
    if (span < options.workers * 8) {
      throw new RangeError(
        `RTC port range ${options.rtcPortMin}-${options.rtcPortMax} is too small for ${options.workers} workers`,
      );
    }
    const pool = new WorkerPool(options);
    try {
      await Promise.all(pool.slots.map((_, i) => pool.spawn(i)));
    } catch (error) {
      pool.close();
      throw error;
    }
    return pool;
  }

  /** Worker i's share of the port range for plain transports (after the WebRtcServer ports). */
  private portRange(index: number): { min: number; max: number } {
    const { rtcPortMin, rtcPortMax, workers } = this.options;
    const first = rtcPortMin + workers;
    const per = Math.floor((rtcPortMax - first + 1) / workers);
    return { min: first + index * per, max: first + (index + 1) * per - 1 };
  }

  private async spawn(index: number): Promise<WorkerSlot> {
    const { mediasoup, listenIp, announcedIp } = this.options;
    const range = this.portRange(index);
    const worker = await mediasoup.createWorker({
      logLevel: this.options.logLevel ?? 'warn',
      logTags: ['info', 'ice', 'dtls', 'rtp', 'srtp', 'rtcp'],
      rtcMinPort: range.min,
      rtcMaxPort: range.max,
      appData: { index },
    });
    let webRtcServer: types.WebRtcServer | undefined;
    try {
      if (this.options.webRtcServer !== false)
        webRtcServer = await worker.createWebRtcServer({
          listenInfos: [
            {
              protocol: 'udp',
              ip: listenIp,
              ...(announcedIp ? { announcedIp } : {}),
              port: this.options.rtcPortMin + index,
            },
          ],
        });
    } catch (error) {
      worker.close();
      throw error;
    }
    const slot: WorkerSlot = { index, worker, webRtcServer, calls: 0 };
    this.slots[index] = slot;
    worker.on('died', (error) => {
      if (this.slots[index] === slot) this.slots[index] = undefined;
      if (this.stopping) {
        // A Ctrl-C in a terminal reaches the workers too (same process group): not a crash.
        this.options.log.info({ worker: index, pid: worker.pid }, 'mediasoup worker exited while stopping');
        this.options.onWorkerDied(slot, error);
        return;
      }
      this.options.log.error({ worker: index, pid: worker.pid, err: error }, 'mediasoup worker died');
      this.options.onWorkerDied(slot, error);
      if (!this.closed) this.respawn(index, 1);
    });
    return slot;
  }

  private respawn(index: number, attempt: number): void {
    const delay = Math.min(5_000, 100 * 2 ** (attempt - 1));
    setTimeout(() => {
      if (this.closed) return;
      this.spawn(index).then(
        (slot) => this.options.onWorkerReplaced?.(slot),
        (error: unknown) => {
          this.options.log.warn({ worker: index, err: error, attempt }, 'could not replace mediasoup worker');
          this.respawn(index, attempt + 1);
        },
      );
    }, delay).unref();
  }

  /** The live worker with the fewest calls; undefined when none is alive. */
  pick(): WorkerSlot | undefined {
    let best: WorkerSlot | undefined;
    for (const s of this.slots) if (s && !s.worker.died && (!best || s.calls < best.calls)) best = s;
    return best;
  }

  get live(): readonly WorkerSlot[] {
    return this.slots.filter((s): s is WorkerSlot => s !== undefined && !s.worker.died);
  }

  /** The service is stopping: workers that exit now are not replaced. */
  stopReplacing(): void {
    this.stopping = true;
  }

  close(): void {
    this.closed = true;
    this.stopping = true;
    for (const s of this.slots) s?.worker.close();
  }
}
