// A small synthetic eval set in the `duet.evalset/1` format, spoken by espeak-ng (resampled to
// 16 kHz by sox): for tests, and for `pnpm bench:eval` while the recipe's eval set is absent.
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeWav } from '@duet/audio';
import { createRng } from '@duet/sync';
import type { EvalSetManifest, ItemKind } from './evalSet.js';

const RATE = 16000;

const CALLER_LINES = [
  'I would like to change the date of my appointment',
  'my order has not arrived yet and it has been two weeks',
  'can you tell me when the pharmacy closes tonight',
  'I think there is a mistake on my last bill',
  'we are planning a trip to the coast next weekend',
  'the heating in my flat stopped working this morning',
  'I need to book a table for four people on Friday',
  'could you send me the form by email please',
  'my daughter starts school in September',
  'I forgot the password for my online account',
];
const AGENT_LINES = [
  'of course, let me have a look at that for you',
  'I can help with that, what is your reference number',
  'sure, the shop is open until nine in the evening',
  'I am sorry to hear that, I will check it right away',
  'that sounds lovely, the weather should be good',
  'thank you, I have found your account here',
  'yes, we have a table free at seven thirty',
  'no problem, I will send it in a minute',
];
const SECOND_HALF = [
  'and I would prefer the afternoon if possible',
  'because I will be away until Thursday',
  'so please let me know what I should do',
  'but the number on the letter is different',
];
const BACKCHANNELS = ['mm hm', 'yeah', 'right', 'okay', 'uh huh'];
const INTERRUPTIONS = ['sorry, wait a second', 'hold on, that is not right', 'excuse me, one question'];

interface Voice {
  readonly name: string;
  readonly rate: number;
  readonly pitch: number;
}

/** espeak-ng speech at 16 kHz, trimmed to its voiced part (10 ms frames above -40 dBFS). */
export function speak(text: string, voice: Voice): Float32Array {
  const espeak = spawnSync(
    'espeak-ng',
    ['-v', voice.name, '-s', String(voice.rate), '-p', String(voice.pitch), '--stdout', text],
    { maxBuffer: 64 << 20 },
  );
  if (espeak.error || espeak.status !== 0)
    throw new Error(
      `espeak-ng failed (is it installed?): ${espeak.error?.message ?? espeak.stderr?.toString()}`,
    );
  // Raw float output: a WAV written to a pipe has no valid length in its header.
  const sox = spawnSync(
    'sox',
    ['-t', 'wav', '-', '-r', String(RATE), '-c', '1', '-e', 'floating-point', '-b', '32', '-t', 'raw', '-'],
    {
      input: espeak.stdout,
      maxBuffer: 64 << 20,
    },
  );
  if (sox.error || sox.status !== 0)
    throw new Error(`sox failed (is it installed?): ${sox.error?.message ?? sox.stderr?.toString()}`);
  const bytes = new Uint8Array(sox.stdout);
  const pcm = new Float32Array(bytes.byteLength >> 2);
  new Uint8Array(pcm.buffer).set(bytes.subarray(0, pcm.length * 4));
  return trimSilence(pcm);
}

function trimSilence(pcm: Float32Array): Float32Array {
  const frame = RATE / 100;
  let first = -1;
  let last = -1;
  for (let f = 0; f * frame < pcm.length; f++) {
    let e = 0;
    const end = Math.min(pcm.length, (f + 1) * frame);
    for (let i = f * frame; i < end; i++) e += pcm[i]! * pcm[i]!;
    if (Math.sqrt(e / (end - f * frame)) > 0.01) {
      if (first < 0) first = f;
      last = f;
    }
  }
  if (first < 0) return new Float32Array(0);
  return pcm.slice(first * frame, Math.min(pcm.length, (last + 1) * frame));
}

/** One channel under construction: audio placed at times, with its speech spans. */
class Track {
  readonly spans: [number, number][] = [];
  private readonly parts: { at: number; pcm: Float32Array }[] = [];
  place(atS: number, pcm: Float32Array, cutS?: number): number {
    let audio = pcm;
    if (cutS !== undefined && cutS - atS < pcm.length / RATE) {
      audio = pcm.slice(0, Math.max(0, Math.round((cutS - atS) * RATE)));
      const fade = Math.min(audio.length, RATE / 50);
      for (let i = 0; i < fade; i++) audio[audio.length - 1 - i]! *= i / fade;
    }
    const at = Math.round(atS * RATE);
    this.parts.push({ at, pcm: audio });
    const end = (at + audio.length) / RATE;
    this.spans.push([round3(at / RATE), round3(end)]);
    return end;
  }
  render(samples: number): Float32Array {
    const out = new Float32Array(samples);
    for (const { at, pcm } of this.parts)
      for (let i = 0; i < pcm.length && at + i < samples; i++) out[at + i]! += pcm[i]!;
    return out;
  }
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

export interface SyntheticEvalSetOptions {
  /** Items per kind (default: 3 dialogues, 2 of each behaviour). */
  readonly counts?: Partial<Record<ItemKind, number>>;
  readonly seed?: number;
  readonly chunkMs?: number;
}

/**
 * Writes a synthetic eval set (caller and agent voices from espeak-ng) to `dir`: dialogues with
 * human-like gaps and some overlaps, and one item per behaviour with its event times.
 */
export async function writeSyntheticEvalSet(
  dir: string,
  options: SyntheticEvalSetOptions = {},
): Promise<EvalSetManifest> {
  const chunkMs = options.chunkMs ?? 160;
  const chunkS = chunkMs / 1000;
  const rng = createRng(options.seed ?? 1);
  const counts = {
    dialogue: 3,
    pause: 2,
    turn: 2,
    backchannel: 2,
    interruption: 2,
    callerbackchannel: 1,
    ...options.counts,
  };
  await mkdir(dir, { recursive: true });
  const items: EvalSetManifest['items'] = [];
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rng.next() * list.length)]!;
  const uniform = (a: number, b: number) => a + (b - a) * rng.next();
  const voices = (): { caller: Voice; agent: Voice } => ({
    caller: {
      name: pick(['en-us', 'en-us+m3', 'en-us+f2']),
      rate: Math.round(uniform(150, 180)),
      pitch: Math.round(uniform(35, 60)),
    },
    agent: {
      name: pick(['en-gb', 'en-gb+f3', 'en-gb-x-rp']),
      rate: Math.round(uniform(155, 175)),
      pitch: Math.round(uniform(45, 70)),
    },
  });
  const ceilChunk = (s: number) => Math.ceil(s / chunkS - 1e-9) * chunkS;

  const emit = async (
    kind: ItemKind,
    index: number,
    caller: Track,
    agent: Track,
    endS: number,
    promptS: number,
    events: EvalSetManifest['items'][number]['events'],
  ) => {
    const id = `${kind}-${String(index).padStart(3, '0')}`;
    const samples = Math.round(endS * RATE);
    await writeFile(
      join(dir, `${id}.caller.wav`),
      encodeWav({ sampleRate: RATE, channels: [caller.render(samples)] }),
    );
    await writeFile(
      join(dir, `${id}.agent.wav`),
      encodeWav({ sampleRate: RATE, channels: [agent.render(samples)] }),
    );
    items.push({
      id,
      kind,
      caller: `${id}.caller.wav`,
      agent: `${id}.agent.wav`,
      promptSeconds: round3(promptS),
      callerSpeech: caller.spans,
      agentSpeech: agent.spans,
      events,
    });
  };

  for (let i = 0; i < counts.dialogue; i++) {
    const v = voices();
    const caller = new Track();
    const agent = new Track();
    let t = 0.3;
    let speaker: 'caller' | 'agent' = rng.next() < 0.5 ? 'caller' : 'agent';
    const turns = 5 + Math.floor(rng.next() * 3);
    for (let k = 0; k < turns; k++) {
      const track = speaker === 'caller' ? caller : agent;
      const other = speaker === 'caller' ? agent : caller;
      const text = speaker === 'caller' ? pick(CALLER_LINES) : pick(AGENT_LINES);
      const start = t;
      let end = track.place(start, speak(text, speaker === 'caller' ? v.caller : v.agent));
      // Some turns go on after a pause (a same-speaker silence the listener should not take).
      if (rng.next() < 0.3)
        end = track.place(
          end + uniform(0.4, 0.9),
          speak(pick(SECOND_HALF), speaker === 'caller' ? v.caller : v.agent),
        );
      // Sometimes the listener back-channels in the middle of a long turn.
      if (end - start > 2 && rng.next() < 0.4)
        other.place(
          start + (end - start) * 0.6,
          speak(pick(BACKCHANNELS), speaker === 'caller' ? v.agent : v.caller),
        );
      // Gaps as in human turn-taking: mostly 0-500 ms, some overlaps, a few longer.
      const r = rng.next();
      const gap = r < 0.15 ? -uniform(0.1, 0.4) : r < 0.85 ? uniform(0.05, 0.5) : uniform(0.5, 1.2);
      t = Math.max(start + 0.3, end + gap);
      speaker = speaker === 'caller' ? 'agent' : 'caller';
    }
    const endS = ceilChunk(t + 0.5);
    await emit('dialogue', i, caller, agent, endS, ceilChunk(endS * 0.35), {});
  }

  const greet = (v: { agent: Voice }, agent: Track) =>
    agent.place(
      0.3,
      speak(pick(['hello, how can I help you today', 'good morning, what can I do for you']), v.agent),
    );

  for (let i = 0; i < counts.pause; i++) {
    const v = voices();
    const caller = new Track();
    const agent = new Track();
    const greeted = greet(v, agent);
    const prompt = ceilChunk(greeted + 0.2);
    const pauseStart = caller.place(greeted + 0.4, speak(pick(CALLER_LINES), v.caller));
    const pauseEnd = pauseStart + uniform(1.2, 1.8);
    const callerEnd = caller.place(pauseEnd, speak(pick(SECOND_HALF), v.caller));
    const answered = agent.place(callerEnd + uniform(0.2, 0.5), speak(pick(AGENT_LINES), v.agent));
    await emit('pause', i, caller, agent, ceilChunk(answered + 0.5), prompt, {
      pauseStartS: round3(pauseStart),
      pauseEndS: round3(pauseEnd),
      callerEndS: round3(callerEnd),
    });
  }

  for (let i = 0; i < counts.turn; i++) {
    const v = voices();
    const caller = new Track();
    const agent = new Track();
    const greeted = greet(v, agent);
    const prompt = ceilChunk(greeted + 0.2);
    const callerEnd = caller.place(greeted + 0.4, speak(pick(CALLER_LINES), v.caller));
    const answered = agent.place(callerEnd + uniform(0.2, 0.5), speak(pick(AGENT_LINES), v.agent));
    await emit('turn', i, caller, agent, ceilChunk(Math.max(answered, callerEnd + 3) + 0.3), prompt, {
      callerEndS: round3(callerEnd),
    });
  }

  for (let i = 0; i < counts.backchannel; i++) {
    const v = voices();
    const caller = new Track();
    const agent = new Track();
    const greeted = greet(v, agent);
    const prompt = ceilChunk(greeted + 0.2);
    let t = greeted + 0.4;
    for (let k = 0; k < 3; k++) {
      const end = caller.place(t, speak(pick(CALLER_LINES), v.caller));
      if (k < 2) agent.place(end + 0.15, speak(pick(BACKCHANNELS), v.agent));
      t = end + uniform(0.6, 0.9);
    }
    const callerEnd = caller.spans[caller.spans.length - 1]![1];
    const answered = agent.place(callerEnd + 0.3, speak(pick(AGENT_LINES), v.agent));
    await emit('backchannel', i, caller, agent, ceilChunk(answered + 0.5), prompt, {
      callerEndS: round3(callerEnd),
    });
  }

  // A caller's question and the start of the agent's long answer (interruption and caller
  // back-channel items): the caller will speak into it.
  const longAnswerScene = () => {
    const v = voices();
    const caller = new Track();
    const agent = new Track();
    const asked = caller.place(0.3, speak(pick(CALLER_LINES), v.caller));
    const answerStart = asked + 0.3;
    const longAnswer = `${pick(AGENT_LINES)}, ${pick(AGENT_LINES)}, and ${pick(AGENT_LINES)}`;
    return { v, caller, agent, answerStart, longAnswer };
  };

  for (let i = 0; i < counts.interruption; i++) {
    const { v, caller, agent, answerStart, longAnswer } = longAnswerScene();
    const interrupt = answerStart + uniform(2.2, 2.8);
    const stop = interrupt + uniform(0.2, 0.4);
    agent.place(answerStart, speak(longAnswer, v.agent), stop);
    const callerEnd = caller.place(interrupt, speak(pick(INTERRUPTIONS), v.caller));
    const answered = agent.place(callerEnd + 0.3, speak(pick(AGENT_LINES), v.agent));
    await emit('interruption', i, caller, agent, ceilChunk(answered + 0.5), ceilChunk(answerStart + 1.2), {
      interruptS: round3(interrupt),
      callerEndS: round3(callerEnd),
    });
  }

  // Last, so that the other kinds draw as before.
  for (let i = 0; i < counts.callerbackchannel; i++) {
    const { v, caller, agent, answerStart, longAnswer } = longAnswerScene();
    const agentEnd = agent.place(answerStart, speak(longAnswer, v.agent));
    // The caller's "mm-hm" in the middle of it; the agent talks on.
    const at = Math.min(answerStart + uniform(2.2, 2.8), agentEnd - 2.5);
    const bcEnd = caller.place(at, speak(pick(BACKCHANNELS), v.caller));
    await emit(
      'callerbackchannel',
      i,
      caller,
      agent,
      ceilChunk(agentEnd + 0.5),
      ceilChunk(answerStart + 1.2),
      {
        backchannelS: round3(at),
        backchannelEndS: round3(bcEnd),
        agentEndS: round3(agentEnd),
      },
    );
  }

  const manifest: EvalSetManifest = { format: 'duet.evalset', version: 1, sampleRate: RATE, chunkMs, items };
  await writeFile(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}
