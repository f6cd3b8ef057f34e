import * as ort from 'onnxruntime-node';
import { SpeechModelError } from './errors.js';
import { loadSpeechManifest, type UnitsManifest, type VocoderManifest } from './manifest.js';

/** One onnxruntime session per model, one intra-op thread by default (a core per service). */
export async function createSession(modelPath: string, intraOpThreads = 1): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(modelPath, {
      intraOpNumThreads: intraOpThreads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
  } catch (cause) {
    throw new SpeechModelError(`onnxruntime cannot load the model: ${(cause as Error).message}`, modelPath, {
      cause,
    });
  }
}

/** Checks that the graph has exactly the contract's input and output, with their types. */
export function checkIo(
  session: ort.InferenceSession,
  path: string,
  input: [string, ort.Tensor.Type],
  output: [string, ort.Tensor.Type],
): void {
  for (const [kind, metas, [name, type]] of [
    ['input', session.inputMetadata, input],
    ['output', session.outputMetadata, output],
  ] as const) {
    const m = metas.find((x) => x.name === name);
    if (!m) throw new SpeechModelError(`the graph has no ${kind} "${name}"`, path);
    if (!m.isTensor || m.type !== type)
      throw new SpeechModelError(`${kind} "${name}" must be a ${type} tensor`, path);
    if (m.shape.length !== 2)
      throw new SpeechModelError(`${kind} "${name}" must have rank 2, has ${m.shape.length}`, path);
  }
}

/** Loads a speech model: manifest (and sha256), session, contract IO check; no leak on refusal. */
export async function openSpeechModel<F extends 'duet.units' | 'duet.vocoder'>(
  manifestPath: string,
  format: F,
  io: { input: [string, ort.Tensor.Type]; output: [string, ort.Tensor.Type] },
  options: {
    intraOpThreads?: number;
    skipSha256?: boolean;
    /** Run the manifest's chunk model, if it has one (default: yes). */
    useChunkModel?:
      | boolean
      | ((manifest: F extends 'duet.units' ? UnitsManifest : VocoderManifest) => boolean);
  },
): Promise<{
  manifest: F extends 'duet.units' ? UnitsManifest : VocoderManifest;
  session: ort.InferenceSession;
  /** Whether the session runs the manifest's chunk model rather than the one-shot model. */
  chunkModel: boolean;
}> {
  const { manifest, modelPath, chunkModelPath } = await loadSpeechManifest(manifestPath, format, {
    verifySha256: !options.skipSha256,
  });
  const use = options.useChunkModel ?? true;
  const path =
    chunkModelPath && (typeof use === 'function' ? use(manifest) : use) ? chunkModelPath : modelPath;
  const session = await createSession(path, options.intraOpThreads);
  try {
    checkIo(session, path, io.input, io.output);
  } catch (error) {
    await session.release();
    throw error;
  }
  return { manifest, session, chunkModel: path !== modelPath };
}

/**
 * One batched model run for the items that pass `check`; every other item gets its own error,
 * so one bad chunk never fails the calls beside it.
 */
export async function runPerItem<I, R>(
  items: readonly I[],
  check: (item: I) => Error | undefined,
  run: (ok: readonly I[]) => Promise<R[]>,
): Promise<(R | Error)[]> {
  const errors = items.map(check);
  const ok = items.filter((_, i) => errors[i] === undefined);
  const outputs = ok.length > 0 ? await run(ok) : [];
  let b = 0;
  return items.map((_, i) => errors[i] ?? outputs[b++]!);
}
