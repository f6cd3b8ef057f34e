// Which UDP port of the configured range a new call gets. Pure bookkeeping: binding the socket
// is the caller's job; a port the OS refuses is released and the next one tried. Ports are
// handed out round-robin so a just-closed call's port is not reused at once (late packets of
// the old call would land in the new one).

export class PortAllocator {
  readonly min: number;
  readonly max: number;
  readonly #used = new Set<number>();
  #cursor: number;

  constructor(min: number, max: number) {
    if (!Number.isInteger(min) || !Number.isInteger(max) || min < 1 || max > 65535 || min > max)
      throw new RangeError(`port range ${min}..${max} is not within 1..65535 with min <= max`);
    this.min = min;
    this.max = max;
    this.#cursor = min;
  }

  get size(): number {
    return this.max - this.min + 1;
  }

  get inUse(): number {
    return this.#used.size;
  }

  /** The next free port (marked used), or undefined when the range is full. */
  acquire(): number | undefined {
    if (this.#used.size >= this.size) return undefined;
    for (let i = 0; i < this.size; i++) {
      const port = this.#cursor;
      this.#cursor = port === this.max ? this.min : port + 1;
      if (!this.#used.has(port)) {
        this.#used.add(port);
        return port;
      }
    }
    return undefined;
  }

  /** Claims a specific port (a reloaded call); false if it is outside the range or taken. */
  reserve(port: number): boolean {
    if (!Number.isInteger(port) || port < this.min || port > this.max || this.#used.has(port)) return false;
    this.#used.add(port);
    return true;
  }

  release(port: number): void {
    this.#used.delete(port);
  }

  isUsed(port: number): boolean {
    return this.#used.has(port);
  }
}
