// Collects the agent chunks of all calls that arrive together (one inference step publishes
// them back to back) into one vocoder batch: the first chunk opens a short window, everything
// that arrives inside it runs as one model call. One run at a time; at most one chunk per call
// per batch (a call's stream must see its chunks in order).

export interface Keyed {
  readonly key: string;
}

export class ChunkBatcher<T extends Keyed> {
  #pending: T[] = [];
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #closed = false;

  constructor(
    private readonly windowMs: number,
    private readonly run: (batch: T[]) => Promise<void>,
    private readonly onError: (error: unknown) => void,
  ) {}

  add(item: T): void {
    if (this.#closed) return;
    this.#pending.push(item);
    this.#schedule(this.windowMs);
  }

  /** Drops pending items of one key (a call that closed). */
  forget(key: string): void {
    this.#pending = this.#pending.filter((p) => p.key !== key);
  }

  /** Takes no more items; resolves once the run in progress (if any) has finished. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending = [];
    await this.#running;
  }

  #schedule(delayMs: number): void {
    if (this.#timer !== undefined || this.#running || this.#pending.length === 0 || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#running = this.#flush();
    }, delayMs);
  }

  async #flush(): Promise<void> {
    this.#timer = undefined;
    const batch: T[] = [];
    const rest: T[] = [];
    const seen = new Set<string>();
    for (const item of this.#pending) {
      if (seen.has(item.key)) rest.push(item);
      else {
        seen.add(item.key);
        batch.push(item);
      }
    }
    this.#pending = rest;
    try {
      await this.run(batch);
    } catch (error) {
      this.onError(error);
    } finally {
      this.#running = undefined;
      // What queued up during the run has waited long enough: go at once.
      this.#schedule(0);
    }
  }
}
