// Where a chunk delayed by the network enters the peer's context (pure; see docs/EVAL.md).

/** When the network hands over the other side's chunk j (ms after T(0)): it is heard in full at T(j+1), plus the one-way latency. */
export function deliveryTimeMs(chunkIndex: number, latencyMs: number, chunkMs: number): number {
  return (chunkIndex + 1) * chunkMs + latencyMs;
}

/**
 * The step at which chunk j replaces the receiver's prediction of it: the first step n whose
 * start T(n) + phase is at or after the delivery (never before j+1, when it is first needed).
 * Steps j+1 .. n-1 run on the prediction.
 */
export function applyingStep(
  chunkIndex: number,
  latencyMs: number,
  chunkMs: number,
  phaseMs: number,
): number {
  const due = deliveryTimeMs(chunkIndex, latencyMs, chunkMs);
  return Math.max(chunkIndex + 1, Math.ceil((due - phaseMs) / chunkMs));
}
