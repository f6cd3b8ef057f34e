import { loadManifest, OnnxSyncModel, SyncEngine } from '@duet/engine';
import { InferenceControlService } from '@duet/protocol';
import { runService } from '@duet/runtime';
import { chunkGeometry } from '@duet/sync';
import { inferenceConfig } from './config.js';
import { inferenceControl } from './control.js';
import { createInferenceMetrics } from './metrics.js';
import { InferenceWorker } from './worker.js';

await runService({
  name: 'inference',
  config: inferenceConfig,
  async start(ctx) {
    const c = ctx.config;
    const geometry = chunkGeometry(c.DUET_INFERENCE_CHUNK_MS);
    const manifest = await loadManifest(c.DUET_INFERENCE_MODEL);
    const reserve = SyncEngine.requiredReserve(geometry, c.DUET_INFERENCE_MAX_LATE_CHUNKS);
    const model = await OnnxSyncModel.load({
      manifestPath: c.DUET_INFERENCE_MODEL,
      slots: c.DUET_INFERENCE_SLOTS,
      contextTokens: c.DUET_INFERENCE_CONTEXT_TOKENS,
      reserve,
      skipSha256: true, // loadManifest above verified it
    });
    const engine = new SyncEngine(model, {
      geometry,
      maxLateChunks: c.DUET_INFERENCE_MAX_LATE_CHUNKS,
      silenceUnit: c.DUET_INFERENCE_SILENCE_UNIT,
      sampling: {
        temperature: c.DUET_INFERENCE_TEMPERATURE,
        topK: 0,
        topP: c.DUET_INFERENCE_TOP_P,
        ...(c.DUET_INFERENCE_TIMING_TEMPERATURE === undefined
          ? {}
          : { timingTemperature: c.DUET_INFERENCE_TIMING_TEMPERATURE }),
      },
    });
    const metrics = createInferenceMetrics(ctx.registry);
    const worker = new InferenceWorker(ctx, engine, metrics);
    await worker.start();
    return {
      grpc: [
        {
          name: 'duet.v1.InferenceControl',
          definition: InferenceControlService,
          implementation: inferenceControl(worker, metrics, manifest, geometry),
        },
      ],
      ready: () =>
        worker.clockStarted ? { ready: true } : { ready: false, reason: 'no clock tick received yet' },
      drain: (signal) => worker.drain(signal),
      close: () => worker.close(),
    };
  },
});
