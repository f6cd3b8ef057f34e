import * as ort from 'onnxruntime-node';
import { SpeechModelError } from './errors.js';

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
