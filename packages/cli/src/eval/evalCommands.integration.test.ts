import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { decodeWav } from '@duet/audio';
import { ensureTinyModel, UNTRAINED_DIALOGUE_MODEL } from '@duet/engine/tiny';
import { writeSyntheticEvalSet } from '@duet/eval';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const main = resolve(import.meta.dirname, '../../dist/main.js');

function duet(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

// The untrained dialogue model (what `duet start` ran before a trained one was committed), the
// default speech models, a synthetic eval set of one item per kind and two short dialogues.
describe('duet eval and duet simulate (real engine, codec, VAD; nats-server + clock)', () => {
  let dir: string;
  let evalset: string;
  let tiny: string;
  beforeAll(async () => {
    // Pinned to the untrained model (not models/default/dialogue, which the recipe may be rewriting).
    tiny = (await ensureTinyModel(UNTRAINED_DIALOGUE_MODEL, { quiet: true })).manifestPath;
    dir = await mkdtemp(join(tmpdir(), 'duet-eval-'));
    evalset = join(dir, 'evalset');
    await writeSyntheticEvalSet(evalset, {
      counts: { dialogue: 2, pause: 1, turn: 1, backchannel: 1, interruption: 1 },
      seed: 3,
    });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('duet eval writes a report with turn-taking and behaviour tables', async () => {
    const out = join(dir, 'report');
    const model = join(dir, 'no-model.json');
    // A clear error for a missing model, before anything runs.
    const bad = await duet(['eval', '--evalset', evalset, '--out', out, '--model', model]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/no-model\.json/);

    const r = await duet(['eval', '--evalset', evalset, '--out', out, '--audio', '--model', tiny]);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('## Turn-taking vs ground truth (2 dialogues');
    expect(r.stdout).toContain('interruption: time until the agent stops');
    expect(r.stdout).toContain('interruption: agent stops anyway (caller silent) rate');
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    expect(Object.keys(report.summary)).toEqual(
      expect.arrayContaining([
        'pause_takeover_rate',
        'turn_takeover_rate',
        'turn_latency_s',
        'turn_taking_r',
      ]),
    );
    expect(report.behaviour.generated.items).toEqual({
      pause: 1,
      turn: 1,
      backchannel: 1,
      interruption: 1,
      callerbackchannel: 1,
    });
    // The scorers on the ground-truth agent channel (espeak-ng speech through Silero VAD): the
    // agent keeps quiet in the pause, answers the turn, back-channels and yields.
    const truth = report.behaviour.truth;
    expect(truth.pause_takeover_rate).toBe(0);
    expect(truth.turn_takeover_rate).toBe(1);
    expect(truth.turn_latency_s).toBeGreaterThan(0);
    expect(truth.turn_latency_s).toBeLessThan(0.8);
    expect(truth.backchannel_rate).toBe(1);
    expect(truth.interruption_takeover_rate).toBe(1);
    expect(truth.interruption_stop_s).toBeLessThan(0.8);
    expect(truth.talk_over_rate).toBe(0); // the data's agent never barges into a turn
    // ... and talks on through the caller's "mm-hm" (the untrained model never stops talking either).
    expect(truth.caller_backchannel_agent_speaking).toBe('1/1');
    expect(truth.caller_backchannel_yield_rate).toBe(0);
    // The item ran again with the caller silent; the untrained model talks on either way.
    expect(report.behaviour.generated.caller_backchannel_yield_rate_silent_caller).toBe(0);
    // So did the interruption item: it talks on without the interruption too.
    expect(report.behaviour.generated.interruption_takeover_rate_silent_caller).toBe(0);
    // Re-synthesised ground truth keeps its timing (IPUs at least correlate).
    expect(report.turnTaking.r.resynth.byKind.ipu).toBeGreaterThan(0.5);
    const wav = decodeWav(readFileSync(join(out, 'turn-000.wav')));
    expect(wav.channels).toHaveLength(2);
    expect(report.settings.sampling).toMatch(/timing temperature off \(the inference service's defaults\)/);
  });

  it('duet eval takes its sampling from --temperature / --top-p / --timing-temperature, and refuses bad ones', async () => {
    const out = join(dir, 'report-timing');
    const bad = await duet([
      'eval',
      '--evalset',
      evalset,
      '--out',
      out,
      '--model',
      tiny,
      '--timing-temperature',
      'hot',
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/timing-temperature/);
    const args = ['eval', '--evalset', evalset, '--out', out, '--model', tiny, '--limit', '1'];
    const r = await duet([...args, '--temperature', '0.7', '--top-p', '0.9', '--timing-temperature', '1']);
    expect(r.code).toBe(0);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    expect(report.settings.sampling).toBe('temperature 0.7, top-p 0.9, timing temperature 1, seed 1');
  });

  it('duet simulate runs two agents on the clock at 160 ms one-way latency, twice', async () => {
    const out = join(dir, 'simulate');
    const r = await duet([
      'simulate',
      '--latency',
      '160',
      '--evalset',
      evalset,
      '--seconds',
      '3',
      '--dialogues',
      '2',
      '--out',
      out,
      '--model',
      tiny,
      '--runs',
      '2',
      '--seed',
      '5',
    ]);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    const report = JSON.parse(readFileSync(join(out, 'simulate.json'), 'utf8'));
    // Two runs (seeds 5 and 6), each scored alone, and r over both runs' dialogues.
    expect(report.results[0].runs.map((x: { seed: number }) => x.seed)).toEqual([5, 6]);
    expect(report.results[0].stats).toHaveLength(4);
    expect(report.results[0].r.pairs).toBe(8);
    expect(report.results[0].runs[1].r.pairs).toBe(4);
    expect(r.stdout).toMatch(
      /Speech per side and dialogue in the 3 s: 160 ms A \d+\.\d s, B \d+\.\d s; ground truth A/,
    );
    const run = report.results[0];
    expect(run.latencyMs).toBe(160);
    // 3 s = 19 chunks after the prompt: 18 steps of both agents (the first chunk is the prompt's next).
    expect(run.run.steps).toBe(18);
    // Every delivered chunk was taken (160 ms late is within maxLateChunks), none lost to lateness.
    expect(run.run.admissions.late).toBe(0);
    expect(run.run.admissions.accepted).toBeGreaterThan(2 * 2 * 14);
    // Chunks arrive one step late, so each was first predicted and then replaced or confirmed.
    expect(run.run.replaced + run.run.confirmed).toBeGreaterThan(2 * 2 * 10);
    expect(existsSync(join(out, 'dialogue-000-latency160.wav'))).toBe(true);
    const wav = decodeWav(readFileSync(join(out, 'dialogue-000-latency160.wav')));
    expect(wav.channels).toHaveLength(2);
    expect(run.r).not.toBeNull();
  });
});
