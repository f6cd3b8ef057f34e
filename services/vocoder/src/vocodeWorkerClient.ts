// The main thread's handle on the vocoder worker thread.

import { Worker } from 'node:worker_threads';
import type { BatchItem, ModelSummary, WorkerInit, WorkerReply, WorkerRequest } from './vocodeProtocol.js';

type BatchReply = Extract<WorkerReply, { type: 'batch' }>;

export class VocodeWorker {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (r: BatchReply) => void; reject: (e: Error) => void }>();
  #nextId = 1;
  private stopping = false;

  private constructor(
    worker: Worker,
    readonly manifest: ModelSummary,
  ) {
    this.#worker = worker;
  }

  /** Starts the worker and waits until its model is loaded. `onDeath`: it died unexpectedly. */
  static async start(init: WorkerInit, onDeath: (error: Error) => void): Promise<VocodeWorker> {
    const worker = new Worker(new URL('./vocodeWorker.js', import.meta.url), { workerData: init });
    let client: VocodeWorker | undefined;
    let starting: { resolve: (m: ModelSummary) => void; reject: (e: Error) => void } | undefined;
    // One set of listeners for the worker's whole life (removing every 'message' listener would
    // stop its port).
    worker.on('message', (m: WorkerReply) => {
      if (m.type === 'ready') starting?.resolve(m.manifest);
      else client?.onMessage(m);
    });
    worker.on('error', (error) => {
      starting?.reject(error);
      client?.failAll(error);
      if (client) onDeath(error);
    });
    worker.on('exit', (code) => {
      const error = new Error(`vocoder worker exited with ${code}`);
      starting?.reject(error);
      client?.failAll(error);
      if (client && !client.stopping) onDeath(error);
    });
    const manifest = await new Promise<ModelSummary>((resolve, reject) => {
      starting = { resolve, reject };
    });
    starting = undefined;
    client = new VocodeWorker(worker, manifest);
    return client;
  }

  open(callId: string): void {
    this.#post({ type: 'open', callId });
  }

  close(callId: string): void {
    this.#post({ type: 'close', callId });
  }

  vocode(items: readonly BatchItem[]): Promise<BatchReply> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#post({ type: 'batch', id, items });
    });
  }

  async terminate(): Promise<void> {
    this.stopping = true;
    await this.#worker.terminate();
  }

  #post(req: WorkerRequest): void {
    this.#worker.postMessage(req);
  }

  private onMessage(m: WorkerReply): void {
    if (m.type === 'ready') return;
    const p = this.#pending.get(m.id);
    if (!p) return;
    this.#pending.delete(m.id);
    if (m.type === 'batch') p.resolve(m);
    else p.reject(new Error(m.error));
  }

  private failAll(error: Error): void {
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
  }
}
