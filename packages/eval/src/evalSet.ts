import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { decodeWav } from '@duet/audio';
import { z } from 'zod';

/** The eval-set manifest (`duet.evalset/1`) that `tools/recipe/duet-recipe eval-set` writes. */
export const ITEM_KINDS = [
  'dialogue',
  'pause',
  'turn',
  'backchannel',
  'interruption',
  'callerbackchannel',
] as const;
export type ItemKind = (typeof ITEM_KINDS)[number];
/** What tells a pause from a turn end: a filler ("um"), or only the caller's intonation. */
export const PAUSE_CUES = ['filler', 'intonation'] as const;
export type PauseCue = (typeof PAUSE_CUES)[number];

const span = z
  .tuple([z.number().nonnegative(), z.number().nonnegative()])
  .refine(([a, b]) => b >= a, { message: 'a span must end after it starts' });

const itemSchema = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'ids are [A-Za-z0-9_-]{1,64}'),
    kind: z.enum(ITEM_KINDS),
    caller: z.string().min(1),
    agent: z.string().min(1),
    promptSeconds: z.number().nonnegative(),
    callerSpeech: z.array(span),
    agentSpeech: z.array(span),
    events: z
      .object({
        pauseStartS: z.number().nonnegative().optional(),
        pauseEndS: z.number().nonnegative().optional(),
        callerEndS: z.number().nonnegative().optional(),
        interruptS: z.number().nonnegative().optional(),
        /** callerbackchannel items: the caller's back-channel over the agent, and the end of the agent's turn. */
        backchannelS: z.number().nonnegative().optional(),
        backchannelEndS: z.number().nonnegative().optional(),
        agentEndS: z.number().nonnegative().optional(),
      })
      .strict()
      .default({}),
    /** Pause items: what marks the hesitation as one (a filler, or only intonation). */
    pauseCue: z.enum(PAUSE_CUES).optional(),
  })
  .strict()
  .superRefine((item, ctx) => {
    const e = item.events;
    const need = (keys: (keyof typeof e)[]) => {
      for (const k of keys)
        if (e[k] === undefined)
          ctx.addIssue({
            code: 'custom',
            path: ['events', k],
            message: `a '${item.kind}' item needs events.${k}`,
          });
    };
    if (item.kind === 'pause') need(['pauseStartS', 'pauseEndS']);
    if (item.kind === 'turn') need(['callerEndS']);
    if (item.kind === 'interruption') need(['interruptS']);
    if (item.kind === 'callerbackchannel') need(['backchannelS', 'backchannelEndS']);
    if (e.pauseStartS !== undefined && e.pauseEndS !== undefined && e.pauseEndS <= e.pauseStartS)
      ctx.addIssue({
        code: 'custom',
        path: ['events', 'pauseEndS'],
        message: 'pauseEndS must follow pauseStartS',
      });
  });

export const evalSetSchema = z
  .object({
    format: z.literal('duet.evalset'),
    version: z.literal(1),
    sampleRate: z.literal(16000),
    chunkMs: z.number().int().positive(),
    items: z.array(itemSchema).min(1),
  })
  .strict()
  .superRefine((set, ctx) => {
    const seen = new Set<string>();
    for (const [i, item] of set.items.entries()) {
      if (seen.has(item.id))
        ctx.addIssue({ code: 'custom', path: ['items', i, 'id'], message: `duplicate id ${item.id}` });
      seen.add(item.id);
    }
  });

export type EvalSetManifest = z.infer<typeof evalSetSchema>;
export type EvalItemManifest = EvalSetManifest['items'][number];

export interface EvalItem extends EvalItemManifest {
  /** 16 kHz mono audio of the caller and of the ground-truth agent, equal lengths (the shorter one padded with silence). */
  readonly callerPcm: Float32Array;
  readonly agentPcm: Float32Array;
  readonly durationS: number;
}

export interface EvalSet {
  readonly dir: string;
  readonly manifest: EvalSetManifest;
  readonly items: readonly EvalItem[];
}

export class EvalSetError extends Error {
  override readonly name = 'EvalSetError';
}

/** Validates a parsed manifest; the error names every wrong field by its path. */
export function parseEvalSetManifest(raw: unknown, where = 'manifest.json'): EvalSetManifest {
  const result = evalSetSchema.safeParse(raw);
  if (result.success) return result.data;
  const lines = result.error.issues
    .slice(0, 10)
    .map((i) => `  ${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
  throw new EvalSetError(`${where} is not a valid duet.evalset/1 manifest:\n${lines.join('\n')}`);
}

/** Reads DIR/manifest.json and the WAVs it names (16 kHz mono). */
export async function loadEvalSet(dir: string): Promise<EvalSet> {
  const root = resolve(dir);
  const path = join(root, 'manifest.json');
  if (!existsSync(path))
    throw new EvalSetError(
      `no eval set at ${root} (manifest.json missing): make one with tools/recipe/duet-recipe eval-set --out ${dir}`,
    );
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (cause) {
    throw new EvalSetError(`cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
  const manifest = parseEvalSetManifest(raw, path);
  const items: EvalItem[] = [];
  for (const item of manifest.items) {
    const callerPcm = await readMono16k(join(root, item.caller), item.id);
    const agentPcm = await readMono16k(join(root, item.agent), item.id);
    const n = Math.max(callerPcm.length, agentPcm.length);
    const pad = (x: Float32Array) => {
      if (x.length === n) return x;
      const y = new Float32Array(n);
      y.set(x);
      return y;
    };
    const durationS = n / 16000;
    if (item.promptSeconds >= durationS)
      throw new EvalSetError(
        `item ${item.id}: promptSeconds ${item.promptSeconds} is not before the end (${durationS.toFixed(2)} s)`,
      );
    items.push({ ...item, callerPcm: pad(callerPcm), agentPcm: pad(agentPcm), durationS });
  }
  return { dir: root, manifest, items };
}

async function readMono16k(path: string, id: string): Promise<Float32Array> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (cause) {
    throw new EvalSetError(`item ${id}: cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
  let wav: ReturnType<typeof decodeWav>;
  try {
    wav = decodeWav(bytes);
  } catch (cause) {
    throw new EvalSetError(`item ${id}: ${path} is not a readable WAV: ${(cause as Error).message}`, {
      cause,
    });
  }
  if (wav.sampleRate !== 16000 || wav.channels.length !== 1)
    throw new EvalSetError(
      `item ${id}: ${path} is ${wav.sampleRate} Hz with ${wav.channels.length} channels; the eval set needs 16 kHz mono`,
    );
  return wav.channels[0]!;
}
