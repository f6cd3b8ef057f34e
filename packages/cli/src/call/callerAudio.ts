import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createResampler, decodeWav, floatToPcm16, type SampleRate } from '@duet/audio';

const RATES: readonly number[] = [8000, 16000, 24000, 48000];

/** Reads a WAV (mono or stereo, 8/16/24/48 kHz) and returns it as PCM16 at `rate`. */
export async function loadCallerWav(path: string, rate: 8000 | 48000): Promise<Int16Array> {
  const wav = decodeWav(readFileSync(path));
  if (!RATES.includes(wav.sampleRate)) {
    throw new Error(
      `${path}: ${wav.sampleRate} Hz is not supported (8, 16, 24 or 48 kHz); convert it, e.g. sox ${path} -r 16000 out.wav`,
    );
  }
  const frames = wav.channels[0]?.length ?? 0;
  const mono = new Float32Array(frames);
  for (const ch of wav.channels) for (let i = 0; i < frames; i++) mono[i]! += ch[i]! / wav.channels.length;
  const resampler = await createResampler({ inputRate: wav.sampleRate as SampleRate, outputRate: rate });
  try {
    const out = resampler.process(mono);
    return Int16Array.from(out, floatToPcm16);
  } finally {
    resampler.close();
  }
}

/** Synthesises `text` with espeak-ng (resampled to 16 kHz by sox) into a WAV file path. */
export function synthesiseSpeech(text: string): { path: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'duet-say-'));
  const raw = join(dir, 'raw.wav');
  const out = join(dir, 'say.wav');
  const e = spawnSync('espeak-ng', ['-w', raw, text], { encoding: 'utf8' });
  if (e.status !== 0) throw new Error(`espeak-ng failed (is it installed?): ${e.stderr ?? e.error}`);
  const s = spawnSync('sox', [raw, '-r', '16000', '-c', '1', out], { encoding: 'utf8' });
  if (s.status !== 0) throw new Error(`sox failed (is it installed?): ${s.stderr ?? s.error}`);
  return { path: out, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
