// RFC 3550 (section 6.4.1 and A.8) interarrival jitter of one RTP stream. Pure: the caller
// passes each packet's arrival time (ms, any monotonic clock) and RTP timestamp.

export class InterarrivalJitter {
  readonly clockRate: number;
  // Previous packet's RTP timestamp (32-bit) and its unwrapped value.
  #lastTimestamp: number | undefined;
  #lastExtended = 0;
  // Previous packet's relative transit time, in timestamp units.
  #lastTransit = 0;
  // Running estimate J, in timestamp units.
  #jitter = 0;

  constructor(clockRate: number) {
    if (!Number.isInteger(clockRate) || clockRate <= 0)
      throw new RangeError(`clockRate must be a positive integer, got ${clockRate}`);
    this.clockRate = clockRate;
  }

  /** Feeds one packet, in arrival order. */
  update(arrivalMs: number, rtpTimestamp: number): void {
    const arrival = (arrivalMs * this.clockRate) / 1000;
    if (this.#lastTimestamp === undefined) {
      this.#lastTimestamp = rtpTimestamp;
      this.#lastExtended = rtpTimestamp;
      this.#lastTransit = arrival - rtpTimestamp;
      return;
    }
    // Unwrap across 2^32 with the signed 32-bit difference to the previous timestamp.
    const extended = this.#lastExtended + ((rtpTimestamp - this.#lastTimestamp) | 0);
    const transit = arrival - extended;
    const d = Math.abs(transit - this.#lastTransit);
    this.#jitter += (d - this.#jitter) / 16;
    this.#lastTransit = transit;
    this.#lastTimestamp = rtpTimestamp;
    this.#lastExtended = extended;
  }

  /** Current estimate in timestamp units. */
  get units(): number {
    return this.#jitter;
  }

  /** Current estimate in milliseconds. */
  get ms(): number {
    return (this.#jitter * 1000) / this.clockRate;
  }

  reset(): void {
    this.#lastTimestamp = undefined;
    this.#jitter = 0;
  }
}
