import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureCached, repoRoot, runExportTool } from '@duet/engine/tiny';
import { beforeAll, describe, expect, it } from 'vitest';
import { SpeechModelError } from './errors.js';
import { SpeechTokenizer } from './speechTokenizer.js';
import { Vocoder } from './vocoder.js';

/** Tiny random-weight models exported by tools/export (HuBERT + k-means; unit HiFi-GAN). */
let unitsManifest: string;
let vocoderManifest: string;

beforeAll(async () => {
  const unitsDir = await ensureCached('tiny-units', { units: 24, layer: 2, leftMs: 960 }, async (dir) => {
    await runExportTool(['tiny-hubert', '--out', dir, '--units', '24'], { quiet: true });
    await runExportTool(
      [
        'hubert-units',
        '--checkpoint',
        join(dir, 'hubert'),
        '--layer',
        '2',
        '--centroids',
        join(dir, 'centroids.npy'),
      ].concat(['--out', join(dir, 'onnx'), '--left-context-ms', '960', '--quiet']),
      { quiet: true },
    );
  });
  unitsManifest = join(unitsDir, 'onnx/manifest.json');
  const vocoderDir = await ensureCached('tiny-vocoder', { units: 32 }, async (dir) => {
    const out = await runExportTool(['tiny-hifigan', '--out', dir, '--units', '32'], { quiet: true });
    const { checkpoint, config } = JSON.parse(out.trim().split('\n').at(-1)!) as {
      checkpoint: string;
      config: string;
    };
    await runExportTool(
      ['unit-hifigan', '--checkpoint', checkpoint, '--config', config, '--out', join(dir, 'onnx'), '--quiet'],
      {
        quiet: true,
      },
    );
  });
  vocoderManifest = join(vocoderDir, 'onnx/manifest.json');
});

function sine(samples: number, hz: number, offset = 0): Float32Array {
  return Float32Array.from(
    { length: samples },
    (_, i) => 0.5 * Math.sin((2 * Math.PI * hz * (i + offset)) / 16000),
  );
}

describe('SpeechTokenizer', () => {
  it('turns each chunk into exactly U units, batched across calls, the same as one call at a time', async () => {
    const tok = await SpeechTokenizer.load({ manifestPath: unitsManifest, unitsPerChunk: 4 });
    expect(tok.chunkSamples).toBe(2560);
    const a1 = tok.openStream();
    const b1 = tok.openStream();
    const a2 = tok.openStream();
    const b2 = tok.openStream();
    for (let k = 0; k < 5; k++) {
      const pa = sine(2560, 220, k * 2560);
      const pb = sine(2560, 700, k * 2560);
      const together = await tok.tokenize([
        { stream: a1, pcm: pa },
        { stream: b1, pcm: pb },
      ]);
      const alone = [
        ...(await tok.tokenize([{ stream: a2, pcm: pa }])),
        ...(await tok.tokenize([{ stream: b2, pcm: pb }])),
      ];
      expect(together).toEqual(alone);
      for (const units of together) {
        expect(units).toHaveLength(4);
        for (const u of units as number[]) expect(u >= 0 && u < tok.manifest.unitCount).toBe(true);
      }
    }
    await tok.close();
  });

  it('refuses a bad chunk on its own: wrong length, NaN samples; the other call goes through', async () => {
    const tok = await SpeechTokenizer.load({ manifestPath: unitsManifest, unitsPerChunk: 4 });
    const good = tok.openStream();
    const bad = tok.openStream();
    const nan = sine(2560, 300);
    nan[100] = Number.NaN;
    const [r1, r2, r3] = await tok.tokenize([
      { stream: bad, pcm: new Float32Array(1000) },
      { stream: good, pcm: sine(2560, 300) },
      { stream: bad, pcm: nan },
    ]);
    expect(String(r1)).toMatch(/must be 2560 samples at 16000 Hz, got 1000/);
    expect(r2).toHaveLength(4);
    expect(String(r3)).toMatch(/sample 100 of the chunk is not finite/);
    await tok.close();
  });
});

describe('Vocoder', () => {
  it('turns each chunk of U units into exactly one chunk of audio, batched across calls', async () => {
    const voc = await Vocoder.load({ manifestPath: vocoderManifest, unitsPerChunk: 4 });
    const s1 = voc.openStream();
    const s2 = voc.openStream();
    const s3 = voc.openStream();
    for (let k = 0; k < 4; k++) {
      const u1 = [k, k + 1, k + 2, k + 3];
      const u2 = [31 - k, 30 - k, 3, 3];
      const together = await voc.vocode([
        { stream: s1, units: u1 },
        { stream: s2, units: u2 },
      ]);
      const [alone] = await voc.vocode([{ stream: s3, units: u1 }]);
      expect(together[0]).toHaveLength(2560);
      expect(together[1]).toHaveLength(2560);
      const a = together[0] as Float32Array;
      const b = alone as Float32Array;
      for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThan(1e-5);
    }
    await voc.close();
  });

  it("cross-fades each chunk in from the previous chunk's provisional tail, so edges are continuous", async () => {
    // Without the DC blocker, so the output can be compared with the model's raw samples.
    const voc = await Vocoder.load({ manifestPath: vocoderManifest, unitsPerChunk: 4, dcBlock: false });
    const x = voc.crossFadeSamples;
    expect(x).toBe(160);
    const stream = voc.openStream();
    const units = Array.from({ length: 40 }, (_, i) => (i * 7) % 32);
    for (let k = 0; k < 10; k++) {
      const tail = stream.tail.slice(); // what the last chunk held back, computed without these units
      const chunk = (await voc.vocode([{ stream, units: units.slice(4 * k, 4 * k + 4) }]))[0] as Float32Array;
      expect(chunk).toHaveLength(2560);
      // The chunk starts on the held-back tail (continuity with the last emitted sample) ...
      expect(Math.abs(chunk[0]! - tail[0]!)).toBeLessThan(0.01 * (1 + Math.abs(tail[0]!)));
      if (k > 0) {
        const changed = tail.some((v, i) => Math.abs(v - chunk[i]!) > 1e-3);
        expect(changed).toBe(true); // the provisional tail really was replaced
      }
    }
  });

  it('refuses unit ids out of range and a wrong unit count, per item', async () => {
    const voc = await Vocoder.load({ manifestPath: vocoderManifest, unitsPerChunk: 4 });
    const s = voc.openStream();
    const t = voc.openStream();
    const [r1, r2, r3] = await voc.vocode([
      { stream: s, units: [1, 2, 3, 99] },
      { stream: t, units: [1, 2, 3, 4] },
      { stream: s, units: [1, 2] },
    ]);
    expect(String(r1)).toMatch(/unit 3 \(99\) is not a unit id \(0..31\)/);
    expect(r2).toHaveLength(2560);
    expect(String(r3)).toMatch(/must have 4 units, got 2/);
    await expect(
      Vocoder.load({ manifestPath: vocoderManifest, unitsPerChunk: 4, silenceUnit: 40 }),
    ).rejects.toThrow(/silenceUnit/);
    await voc.close();
  });
});

describe('speech model files', () => {
  it('refuses a manifest of the wrong kind, a changed model file and a corrupt one', async () => {
    await expect(SpeechTokenizer.load({ manifestPath: vocoderManifest, unitsPerChunk: 4 })).rejects.toThrow(
      /format must be "duet.units", got "duet.vocoder"/,
    );
    const dir = join(vocoderManifest, '..');
    const manifest = JSON.parse(await readFile(vocoderManifest, 'utf8')) as Record<string, unknown>;
    const copy = join(dir, 'manifest.bad.json');
    await writeFile(copy, JSON.stringify({ ...manifest, sha256: '0'.repeat(64) }));
    await expect(Vocoder.load({ manifestPath: copy, unitsPerChunk: 4 })).rejects.toThrow(SpeechModelError);
    await expect(Vocoder.load({ manifestPath: copy, unitsPerChunk: 4 })).rejects.toThrow(
      /sha256 of model.onnx is/,
    );
    await writeFile(copy, JSON.stringify({ ...manifest, model: 'missing.onnx' }));
    await expect(Vocoder.load({ manifestPath: copy, unitsPerChunk: 4 })).rejects.toThrow(
      /cannot read model file missing.onnx/,
    );
  });
});

describe('the default speech-units tokenizer (models/default/units)', () => {
  it('loads, maps silence to its silence unit and speech-like audio to several units', async () => {
    const manifestPath = join(repoRoot, 'models/default/units/manifest.json');
    const tok = await SpeechTokenizer.load({ manifestPath, unitsPerChunk: 4 });
    const silenceUnit = (JSON.parse(await readFile(manifestPath, 'utf8')) as { silenceUnit: number })
      .silenceUnit;
    const s = tok.openStream();
    const [silent] = await tok.tokenize([{ stream: s, pcm: new Float32Array(2560) }]);
    expect(silent).toEqual([silenceUnit, silenceUnit, silenceUnit, silenceUnit]);
    const seen = new Set<number>();
    for (let k = 0; k < 20; k++) {
      const pcm = Float32Array.from(
        { length: 2560 },
        (_, i) => 0.3 * Math.sin((2 * Math.PI * (150 + 60 * k) * i) / 16000),
      );
      for (const u of (await tok.tokenize([{ stream: s, pcm }]))[0] as number[]) seen.add(u);
    }
    expect(seen.size).toBeGreaterThan(3);
    await tok.close();
  });
});

describe('the default vocoder (models/default/vocoder)', () => {
  it('keeps silence silent: silence units give no hiss and no clicks at chunk edges', async () => {
    const silenceUnit = (
      JSON.parse(await readFile(join(repoRoot, 'models/default/units/manifest.json'), 'utf8')) as {
        silenceUnit: number;
      }
    ).silenceUnit;
    const voc = await Vocoder.load({
      manifestPath: join(repoRoot, 'models/default/vocoder/manifest.json'),
      unitsPerChunk: 4,
      silenceUnit,
    });
    const s = voc.openStream();
    let peak = 0;
    let energy = 0;
    let sum = 0;
    let n = 0;
    for (let k = 0; k < 25; k++) {
      const [chunk] = await voc.vocode([
        { stream: s, units: [silenceUnit, silenceUnit, silenceUnit, silenceUnit] },
      ]);
      for (const x of chunk as Float32Array) {
        if (k < 2) continue; // the DC blocker settles within ~12 ms of the call's start
        peak = Math.max(peak, Math.abs(x));
        energy += x * x;
        sum += x;
        n++;
      }
    }
    expect(peak).toBeLessThan(0.01); // below -40 dBFS everywhere, edges included
    expect(Math.sqrt(energy / n)).toBeLessThan(0.01);
    expect(Math.abs(sum / n)).toBeLessThan(0.001); // no DC offset (the raw model leaves ~0.005)
    await voc.close();
  });
});

describe('chunk models (the models trimmed to what one chunk needs)', () => {
  const defaultUnits = join(repoRoot, 'models/default/units/manifest.json');
  const defaultVocoder = join(repoRoot, 'models/default/vocoder/manifest.json');

  /** Utterance-like audio: a gliding tone with pauses, chunk by chunk. */
  function speechLike(k: number): Float32Array {
    return Float32Array.from({ length: 2560 }, (_, i) => {
      const t = k * 2560 + i;
      const on = Math.floor(t / 4000) % 3 !== 2;
      return on ? 0.3 * Math.sin((2 * Math.PI * (120 + (t % 8000) / 40) * t) / 16000) : 0;
    });
  }

  it('the default tokenizer gives the same units with its chunk model as with the one-shot model', async () => {
    const chunk = await SpeechTokenizer.load({ manifestPath: defaultUnits, unitsPerChunk: 4 });
    const full = await SpeechTokenizer.load({
      manifestPath: defaultUnits,
      unitsPerChunk: 4,
      useChunkModel: false,
    });
    expect(chunk.trimmedUnits).toBe(1);
    expect(full.trimmedUnits).toBe(0);
    const [a, b] = [chunk.openStream(), full.openStream()];
    const got: number[] = [];
    const want: number[] = [];
    for (let k = 0; k < 30; k++) {
      const pcm = speechLike(k);
      got.push(...((await chunk.tokenize([{ stream: a, pcm }]))[0] as number[]));
      want.push(...((await full.tokenize([{ stream: b, pcm }]))[0] as number[]));
    }
    expect(new Set(want).size).toBeGreaterThan(5);
    expect(got).toEqual(want);
    // Without a whole unit of left context the chunk model cannot run: the one-shot model does.
    const noLeft = await SpeechTokenizer.load({
      manifestPath: defaultUnits,
      unitsPerChunk: 4,
      leftContextSamples: 0,
    });
    expect(noLeft.trimmedUnits).toBe(0);
    expect((await noLeft.tokenize([{ stream: noLeft.openStream(), pcm: speechLike(3) }]))[0]).toHaveLength(4);
    await Promise.all([chunk.close(), full.close(), noLeft.close()]);
  });

  it('the default vocoder gives the same audio with its chunk model as with the one-shot model', async () => {
    const chunk = await Vocoder.load({ manifestPath: defaultVocoder, unitsPerChunk: 4 });
    const full = await Vocoder.load({ manifestPath: defaultVocoder, unitsPerChunk: 4, useChunkModel: false });
    expect(chunk.trimmedSamples).toBeGreaterThan(0);
    expect(full.trimmedSamples).toBe(0);
    const [a, b] = [chunk.openStream(), full.openStream()];
    let worst = 0;
    let level = 0;
    for (let k = 0; k < 12; k++) {
      const units = [0, 1, 2, 3].map((j) => (k * 37 + j * 11) % chunk.manifest.unitCount);
      const [x] = await chunk.vocode([{ stream: a, units }]);
      const [y] = await full.vocode([{ stream: b, units }]);
      for (let i = 0; i < 2560; i++) {
        worst = Math.max(worst, Math.abs((x as Float32Array)[i]! - (y as Float32Array)[i]!));
        level = Math.max(level, Math.abs((y as Float32Array)[i]!));
      }
    }
    expect(level).toBeGreaterThan(0.05);
    expect(worst).toBeLessThan(1e-5);
    await Promise.all([chunk.close(), full.close()]);
  });

  it('refuses a chunk model whose file changed or whose geometry is impossible', async () => {
    const manifest = JSON.parse(await readFile(defaultVocoder, 'utf8')) as {
      chunkModel: Record<string, unknown>;
      leftContextUnits: number;
    };
    const copy = join(repoRoot, 'models/default/vocoder/manifest.test-bad.json');
    try {
      for (const [chunkModel, error] of [
        [{ ...manifest.chunkModel, sha256: '0'.repeat(64) }, /sha256 of chunk.onnx is/],
        [{ ...manifest.chunkModel, model: 'gone.onnx' }, /cannot read model file gone.onnx/],
        [{ ...manifest.chunkModel, trimmedSamples: -1 }, /chunkModel.trimmedSamples must be an integer/],
        [
          { ...manifest.chunkModel, trimmedSamples: (manifest.leftContextUnits + 1) * 640 },
          /chunkModel.trimmedSamples must be an integer/,
        ],
        [{ ...manifest.chunkModel, minUnits: 0 }, /chunkModel.minUnits must be an integer/],
        ['chunk.onnx', /chunkModel must be an object/],
      ] as const) {
        await writeFile(copy, JSON.stringify({ ...manifest, chunkModel }));
        await expect(Vocoder.load({ manifestPath: copy, unitsPerChunk: 4 })).rejects.toThrow(error);
      }
    } finally {
      await rm(copy, { force: true });
    }
  });
});
