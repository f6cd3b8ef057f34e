import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Access to `tools/export` (Python) from TypeScript tests and benchmarks: tiny random-weight
 * Llama checkpoints, their export to the engine's contract, and the Hugging Face reference.
 */

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');

export function pythonExecutable(): string {
  const fromEnv = process.env.DUET_PYTHON;
  if (fromEnv) return fromEnv;
  const venv = join(repoRoot, '.venv/bin/python');
  if (!existsSync(venv)) {
    throw new Error(
      `no Python tool environment at ${venv}: run scripts/setup-python.sh (or set DUET_PYTHON)`,
    );
  }
  return venv;
}

/** Runs `python -m duet_export ...`; resolves with stdout, rejects with stderr on failure. */
export function runExportTool(
  args: readonly string[],
  options: { pinCpu?: number; quiet?: boolean } = {},
): Promise<string> {
  const python = pythonExecutable();
  const argv = ['-m', 'duet_export', ...args];
  const [cmd, cmdArgs] =
    options.pinCpu !== undefined && existsSync('/usr/bin/taskset')
      ? ['/usr/bin/taskset', ['-c', String(options.pinCpu), python, ...argv]]
      : [python, argv];
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, cmdArgs, {
      env: { ...process.env, PYTHONPATH: join(repoRoot, 'tools/export'), PYTHONUNBUFFERED: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (!options.quiet) process.stderr.write(d);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolvePromise(stdout);
      else reject(new Error(`duet_export ${args[0]} exited with ${code}:\n${stderr.slice(-4000)}`));
    });
  });
}

function exporterFingerprint(): string {
  const dir = join(repoRoot, 'tools/export/duet_export');
  const hash = createHash('sha256');
  for (const f of readdirSync(dir)
    .filter((n) => n.endsWith('.py'))
    .sort())
    hash.update(f).update(readFileSync(join(dir, f)));
  return hash.digest('hex');
}

export interface TinyLlamaSpec {
  readonly layers: number;
  readonly hidden: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly intermediate: number;
  readonly vocab: number;
  readonly maxContext: number;
  readonly tied?: boolean;
  readonly ropeScaling?: 'none' | 'linear' | 'llama3';
  readonly attentionBias?: boolean;
  readonly unitBase?: number;
  readonly unitCount?: number;
  readonly s0?: number;
  readonly s1?: number;
  readonly seed?: number;
}

/** The bench model of `pnpm bench:engine` (and the demo): Llama, 4 layers, hidden 256, GQA 4:2, 512 units + 2 tags. */
export const BENCH_MODEL: TinyLlamaSpec = {
  layers: 4,
  hidden: 256,
  heads: 4,
  kvHeads: 2,
  headDim: 64,
  intermediate: 688,
  vocab: 514,
  maxContext: 2048,
  seed: 7,
};

/**
 * An untrained (random-weight) dialogue model in the default units' vocabulary (128 units +
 * [S0]/[S1]): what the services run when models/default/dialogue is absent, and what the media-path
 * tests run (it speaks on every chunk). It exercises the whole loop at a realistic small size;
 * what it says is noise.
 */
export const UNTRAINED_DIALOGUE_MODEL: TinyLlamaSpec = {
  layers: 2,
  hidden: 128,
  heads: 4,
  kvHeads: 2,
  headDim: 32,
  intermediate: 344,
  vocab: 130,
  maxContext: 2048,
  unitBase: 0,
  unitCount: 128,
  s0: 128,
  s1: 129,
  seed: 11,
};

/** The committed default dialogue model (trained by tools/recipe `default-dialogue`). */
export const DEFAULT_DIALOGUE_MODEL = join(repoRoot, 'models/default/dialogue/manifest.json');
/** The committed default speech-units tokenizer and vocoder (tools/recipe, docs/units-contract.md). */
export const DEFAULT_UNITS_MODEL = join(repoRoot, 'models/default/units/manifest.json');
export const DEFAULT_VOCODER_MODEL = join(repoRoot, 'models/default/vocoder/manifest.json');

/**
 * The dialogue model to serve or evaluate: `path` when given, else the committed default when
 * present, else the untrained model (built once).
 */
export async function resolveDialogueModel(path?: string): Promise<{ path: string; untrained: boolean }> {
  if (path) return { path, untrained: false };
  if (existsSync(DEFAULT_DIALOGUE_MODEL)) return { path: DEFAULT_DIALOGUE_MODEL, untrained: false };
  const tiny = await ensureTinyModel(UNTRAINED_DIALOGUE_MODEL, { quiet: true });
  return { path: tiny.manifestPath, untrained: true };
}

export interface TinyModel {
  /** Hugging Face checkpoint directory (the reference's weights). */
  readonly checkpoint: string;
  /** The exported model's manifest.json. */
  readonly manifestPath: string;
}

/**
 * Makes (or reuses, keyed by the spec) a random-weight Llama checkpoint and its ONNX export
 * under `.cache/models/`.
 */
/**
 * A directory under `.cache/models/` built once by `build` (into a temporary directory, then
 * renamed), keyed by `kind`, `spec` and the exporter's sources, so a changed exporter never
 * serves a stale model.
 */
export async function ensureCached(
  kind: string,
  spec: unknown,
  build: (dir: string) => Promise<void>,
): Promise<string> {
  const key = createHash('sha256')
    .update(kind)
    .update(JSON.stringify(spec))
    .update(exporterFingerprint())
    .digest('hex')
    .slice(0, 16);
  const dir = join(repoRoot, '.cache/models', `${kind}-${key}`);
  if (existsSync(join(dir, '.complete'))) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await build(tmp);
  await writeFile(join(tmp, '.complete'), '');
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  return dir;
}

/** Makes (or reuses) a random-weight Llama checkpoint and its ONNX export. */
export async function ensureTinyModel(
  spec: TinyLlamaSpec,
  options: { quiet?: boolean } = {},
): Promise<TinyModel> {
  const dir = await ensureCached('tiny', spec, async (tmp) => {
    const args = [
      'tiny',
      '--out',
      join(tmp, 'hf'),
      '--layers',
      String(spec.layers),
      '--hidden',
      String(spec.hidden),
      '--heads',
      String(spec.heads),
      '--kv-heads',
      String(spec.kvHeads),
      '--head-dim',
      String(spec.headDim),
      '--intermediate',
      String(spec.intermediate),
      '--vocab',
      String(spec.vocab),
      '--max-context',
      String(spec.maxContext),
      '--seed',
      String(spec.seed ?? 0),
      '--rope-scaling',
      spec.ropeScaling ?? 'none',
    ];
    if (spec.tied) args.push('--tied');
    if (spec.attentionBias) args.push('--attention-bias');
    if (spec.unitBase !== undefined) args.push('--unit-base', String(spec.unitBase));
    if (spec.unitCount !== undefined) args.push('--unit-count', String(spec.unitCount));
    if (spec.s0 !== undefined) args.push('--s0', String(spec.s0));
    if (spec.s1 !== undefined) args.push('--s1', String(spec.s1));
    await runExportTool(args, options);
    await runExportTool(['llama', '--checkpoint', join(tmp, 'hf'), '--out', join(tmp, 'onnx')], options);
  });
  return { checkpoint: join(dir, 'hf'), manifestPath: join(dir, 'onnx/manifest.json') };
}

/**
 * Benchmarks measure one core: re-runs the current process pinned to CPU 0 (taskset) and exits
 * with its status; returns in the pinned child (or where taskset is missing).
 */
export function pinToOneCore(): void {
  if (process.env.DUET_BENCH_PINNED || !existsSync('/usr/bin/taskset')) return;
  const r = spawnSync(
    '/usr/bin/taskset',
    ['-c', '0', process.execPath, ...process.execArgv, ...process.argv.slice(1)],
    {
      stdio: 'inherit',
      env: { ...process.env, DUET_BENCH_PINNED: '1' },
    },
  );
  process.exit(r.status ?? 1);
}
