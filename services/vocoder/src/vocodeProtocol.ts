// Messages between the service's main thread and its vocoder worker thread (vocodeWorker.ts).

export interface WorkerInit {
  readonly manifestPath: string;
  readonly unitsPerChunk: number;
  readonly silenceUnit: number;
}

export interface BatchItem {
  readonly callId: string;
  readonly chunkIndex: number;
  readonly units: readonly number[];
}

export type WorkerRequest =
  | { readonly type: 'open'; readonly callId: string }
  | { readonly type: 'close'; readonly callId: string }
  | { readonly type: 'batch'; readonly id: number; readonly items: readonly BatchItem[] };

export interface BatchResult {
  readonly callId: string;
  readonly chunkIndex: number;
  /** The chunk's audio at the model rate. */
  readonly audio?: Float32Array;
  readonly error?: string;
}

export interface ModelSummary {
  readonly format: string;
  readonly sha256: string;
  readonly unitCount: number;
  readonly sampleRate: number;
}

export type WorkerReply =
  | { readonly type: 'ready'; readonly manifest: ModelSummary }
  | {
      readonly type: 'batch';
      readonly id: number;
      readonly vocodeMs: number;
      readonly batchSize: number;
      readonly results: readonly BatchResult[];
    }
  | { readonly type: 'failed'; readonly id: number; readonly error: string };
