// The vocoder's worker thread: the batched model run of every call's chunk (onnxruntime-node
// runs synchronously, and a big batch takes hundreds of ms), so that it never delays a packet
// on the main thread. Messages are handled strictly in order (open before the call's first
// chunk, close after). Only @duet/speech is loaded here: @evan/opus (in @duet/audio) crashes
// the process when a worker that loaded it is torn down.

import { parentPort, workerData } from 'node:worker_threads';
import { Vocoder, type VocoderStream } from '@duet/speech';
import type { BatchResult, WorkerInit, WorkerReply, WorkerRequest } from './vocodeProtocol.js';

const port = parentPort!;
const init = workerData as WorkerInit;

const vocoder = await Vocoder.load({
  manifestPath: init.manifestPath,
  unitsPerChunk: init.unitsPerChunk,
  silenceUnit: init.silenceUnit,
  intraOpThreads: 1,
});
// The first model run allocates and optimises: pay for it now, not in a call's first chunk.
await vocoder.vocode([
  { stream: vocoder.openStream(), units: Array(init.unitsPerChunk).fill(init.silenceUnit) },
]);
const streams = new Map<string, VocoderStream>();

async function handle(req: WorkerRequest): Promise<void> {
  switch (req.type) {
    case 'open':
      streams.get(req.callId)?.close();
      streams.set(req.callId, vocoder.openStream());
      return;
    case 'close':
      streams.get(req.callId)?.close();
      streams.delete(req.callId);
      return;
    case 'batch': {
      const live = req.items.filter((it) => streams.has(it.callId));
      const started = performance.now();
      const audio = await vocoder.vocode(
        live.map((it) => ({ stream: streams.get(it.callId)!, units: it.units })),
      );
      const vocodeMs = performance.now() - started;
      const results: BatchResult[] = live.map((it, i) => {
        const a = audio[i]!;
        return a instanceof Error
          ? { callId: it.callId, chunkIndex: it.chunkIndex, error: a.message }
          : { callId: it.callId, chunkIndex: it.chunkIndex, audio: a };
      });
      const reply: WorkerReply = { type: 'batch', id: req.id, vocodeMs, batchSize: live.length, results };
      port.postMessage(
        reply,
        results.flatMap((r) => (r.audio ? [r.audio.buffer as ArrayBuffer] : [])),
      );
      return;
    }
  }
}

let queue = Promise.resolve();
port.on('message', (req: WorkerRequest) => {
  queue = queue.then(async () => {
    try {
      await handle(req);
    } catch (error) {
      if (req.type === 'batch')
        port.postMessage({
          type: 'failed',
          id: req.id,
          error: (error as Error).message,
        } satisfies WorkerReply);
    }
  });
});
port.postMessage({
  type: 'ready',
  manifest: {
    format: vocoder.manifest.format,
    sha256: vocoder.manifest.sha256,
    unitCount: vocoder.manifest.unitCount,
    sampleRate: vocoder.manifest.sampleRate,
  },
} satisfies WorkerReply);
