// Every NATS subject, stream and KV bucket Duet uses, named in one place (docs/subjects.md
// mirrors this file). Call ids are single subject tokens: [A-Za-z0-9_-]{1,64}.

const CALL_ID = /^[A-Za-z0-9_-]{1,64}$/;

export function isValidCallId(callId: string): boolean {
  return CALL_ID.test(callId);
}

export function assertCallId(callId: string): string {
  if (!isValidCallId(callId)) {
    throw new RangeError(`call id ${JSON.stringify(callId)} is not [A-Za-z0-9_-]{1,64}`);
  }
  return callId;
}

export const subjects = {
  /** Tick (duet.v1.Tick), one per chunk, from the clock leader. */
  tick: 'duet.clock.tick',
  /** UnitChunk (speaker USER) from the tokenizer: the caller's units of one chunk. */
  userUnits: (callId: string) => `duet.call.${assertCallId(callId)}.user`,
  /** UnitChunk (speaker AGENT) from inference: the agent's next chunk, expanded to U units. */
  agentUnits: (callId: string) => `duet.call.${assertCallId(callId)}.agent`,
  /** CallEvent: opened, closed (every service drops the call), resumed, DTMF. */
  callEvent: (callId: string) => `duet.call.${assertCallId(callId)}.event`,
  /** Wildcards for consumers of every call. */
  allUserUnits: 'duet.call.*.user',
  allAgentUnits: 'duet.call.*.agent',
  allCallEvents: 'duet.call.*.event',
  /** WorkerHeartbeat after each step of an inference worker. */
  inferenceHeartbeat: 'duet.inference.heartbeat',
  /** PlaceCallRequest -> PlaceCallReply, addressed to one inference worker. */
  placeCall: (workerId: string) => `duet.inference.worker.${workerId}.place`,
} as const;

/** Extracts the call id from a duet.call.<id>.<kind> subject. */
export function callIdOfSubject(subject: string): string | undefined {
  const parts = subject.split('.');
  return parts.length === 4 && parts[0] === 'duet' && parts[1] === 'call' ? parts[2] : undefined;
}

/** JetStream streams and KV buckets (created idempotently by ensureJetStream()). */
export const jetstream = {
  /** Stream capturing every user unit chunk, so a resuming worker loses no real unit. */
  unitsStream: 'DUET_UNITS',
  /** KV: "<call>.inference" / "<call>.tokenizer" / "<call>.vocoder" -> that service's call record. */
  callsBucket: 'duet_calls',
  /** KV: call id -> CallHistory (last chunks of the call as the inference worker saw it). */
  historyBucket: 'duet_history',
  /** KV: worker id -> WorkerHeartbeat (placement reads it). */
  workersBucket: 'duet_workers',
  /** KV: "leader" -> the clock's last claimed tick (the lease). */
  clockBucket: 'duet_clock',
} as const;

export const callRecordKey = (callId: string, service: 'inference' | 'tokenizer' | 'vocoder'): string =>
  `${assertCallId(callId)}.${service}`;
