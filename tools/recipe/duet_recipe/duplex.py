"""Two-channel (duplex) dialogue audio from text dialogues: synthesis of both speakers' pieces
with espeak-ng and composition of the caller and agent channels with human-like timing.

Synthesis (`synthesize_dialogue`, cached per dialogue as `pieces/NNNNNN.npz`): every turn is
split into sentences; some turns get a hesitation (a sentence split after a few words, the first
part ending in ", um," / ", uh," / "," so espeak-ng gives it a continuation, not a final,
intonation); each speaker also gets a few back-channels ("Mm hmm.", "Yeah.", ...). Each
speaker has its own espeak-ng voice (base voice + variant), rate and pitch. Pieces are
trimmed of espeak's leading/trailing silence.

Composition (`compose`): places the pieces on two channels.
- stage 2 (paper's stage 2): turns alternate; the gap before a turn is drawn from a
  human-like floor-transfer distribution (`draw_gap`: most gaps 0-500 ms, a tail to 1.2 s, some
  overlaps, i.e. negative gaps, mostly by the caller); sentences inside a turn are 60-300 ms
  apart, hesitations 150-400 ms.
- stage 3 (our own): as stage 2 plus mid-turn pauses of the caller (0.6-1.6 s after a
  hesitation, the agent stays silent: no back-channel goes into a hesitation pause), agent
  back-channels during long caller turns (at sentence ends or mid-speech), caller
  back-channels during long agent turns (the agent goes on), and interruptions: the caller
  starts 0.8 s or more into a long agent turn and the agent stops 0.1-0.45 s later (30 ms fade).
  In `composition` 3 the agent also makes false starts: in some long caller turns it begins its
  answer at a sentence end or mid-sentence, the caller goes on, and the agent stops 0.1-0.45 s
  after the caller's speech resumes (`_false_start`). Composition 1 lacks them.
- `composition` 5 (the default): composition 3 whose agent (stages 2 and 3) answers 0.23-0.58 s
  after the caller's turn (or after a long gap), never in overlap: late enough that the engine,
  which decides each agent chunk before it has heard the caller's latest one, could have heard
  the silence (`draw_gap`).
A sample ends 0.5-1.5 s after its last speech.
`composition` 2 (an experiment, not the default: tools/recipe/README.md) lets the interrupted
agent stop 0.05-0.3 s after the caller starts and ends a sample 0.1 s after a caller turn that is
the dialogue's last (its text has no answer); `composition` 4 (another) makes composition 3's
agent answer 0.04-0.35 s after the caller; `composition` 6 makes composition 5's agent answer the
dialogue's last caller turn too (`_last_answer`), and 7 also stretches its long gaps to 2 s.
The agent channel is clean (it stands for the model's own output, which the vocoder makes);
the caller channel is degraded like real callers: clean, additive noise or a G.711 round trip.

A composed sample carries ground truth: speech segments per channel, turn ends of the caller,
mid-turn pauses, interruptions, back-channels and (compositions 3-7) false starts (seconds).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .speech import BASE_VOICES, SAMPLE_RATE, SpeechError, colored_noise, telephone_g711

HESITATIONS = [",", ", um,", ", uh,", ", er,", ", um,"]
AGENT_BACKCHANNELS = ["Mm hmm.", "Yeah.", "Uh huh.", "Right.", "Okay.", "I see.", "Mm.", "Sure."]
CALLER_BACKCHANNELS = ["Mm hmm.", "Yeah.", "Okay.", "Right.", "Uh huh."]
VOICE_VARIANTS_EXCLUDED = {"whisper", "croak"}  # too far from callers / the vocoder's speech
RATES = (130, 210)
PITCHES = (25, 75)
PIECES_FORMAT = 1
# Share of caller turns (with a sentence of 5+ words) that get a hesitation: a sentence split
# after a few words, which stage 3 turns into a mid-turn pause. 0.9 rather than 0.45: twice the
# pauses taught the model to keep quiet in them far better (tools/recipe/README.md, E5).
CALLER_HESITATION = 0.9
# Versions of `compose`'s timing rules (`--composition`); data made by another is rebuilt, not reused.
# 1: the rules above without false starts (the default model before that was trained on it).
# 2: unanswered last caller turns end the sample, interrupted agents stop 0.05-0.3 s (not 0.1-0.45 s).
# 3: composition 1 plus, in stage 3, agent false starts (`_false_start`); stages 1 and 2 as in 1
#    (the previous default model was trained on it).
# 4: composition 3 with a prompt agent: its answers come 0.04-0.35 s after the caller (no long gaps).
# 5: composition 3 with an agent that answers only once it could have heard the silence: 0.23-0.58 s
#    after the caller (and the long gaps), never in overlap (`draw_gap`).
# 6: composition 5 whose agent also answers the dialogue's last caller turn (`_last_answer`): no
#    finished turn goes unanswered (in 5 one caller turn end in nine did, at the end of the sample).
# 7: composition 6 whose long gaps reach 2 s (0.5-2.0 s, not 0.5-1.2 s): an answer can still come
#    after the window in which the model has missed it.
# 8: composition 5 whose interrupted agent stops 0.05-0.3 s after the caller starts (2's fast yield).


@dataclass(frozen=True)
class CompositionRules:
    """What a composition changes in `compose` (the versions above)."""

    false_starts: bool = False  # stage 3: the agent starts over a long caller turn that goes on
    agent_timing: str = "human"  # the agent's answer gaps (`draw_gap`)
    answer_last_turn: bool = False  # the agent answers the dialogue's last caller turn (`_last_answer`)
    fast_yield: bool = False  # an interrupted agent stops 0.05-0.3 s after the caller starts (not 0.1-0.45 s)
    end_unanswered: bool = False  # 2: a sample ends 0.1 s after an unanswered last caller turn


COMPOSITION_RULES = {
    1: CompositionRules(),
    2: CompositionRules(fast_yield=True, end_unanswered=True),
    3: CompositionRules(false_starts=True),
    4: CompositionRules(false_starts=True, agent_timing="prompt"),
    5: CompositionRules(false_starts=True, agent_timing="informed"),
    6: CompositionRules(false_starts=True, agent_timing="informed", answer_last_turn=True),
    7: CompositionRules(false_starts=True, agent_timing="patient", answer_last_turn=True),
    8: CompositionRules(false_starts=True, agent_timing="informed", fast_yield=True),
}
COMPOSITIONS = tuple(COMPOSITION_RULES)
COMPOSITION = 5


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- plan + synthesis

def split_sentences(text: str) -> list[str]:
    parts = [p.strip() for p in re.split(r"(?<=[.?!])\s+", text.strip()) if p.strip()]
    return parts or [text.strip()]


def plan_pieces(dialogue: dict, seed: int, index: int, variants: list[str],
                caller_hesitation: float = CALLER_HESITATION) -> dict:
    """Voices and the text of every piece (deterministic in (seed, index, caller_hesitation); the
    voices do not depend on caller_hesitation)."""
    rng = np.random.default_rng([seed, index, 11])
    usable = [v for v in variants if v not in VOICE_VARIANTS_EXCLUDED] or [""]
    voices = {}
    for role in ("caller", "agent"):
        while True:
            base = BASE_VOICES[int(rng.integers(len(BASE_VOICES)))]
            var = usable[int(rng.integers(len(usable)))]
            v = base + (f"+{var}" if var else "")
            if all(v != o["voice"] for o in voices.values()):
                break
        voices[role] = {"voice": v, "rate": int(rng.integers(RATES[0], RATES[1] + 1)),
                        "pitch": int(rng.integers(PITCHES[0], PITCHES[1] + 1))}
    pieces = []
    for k, turn in enumerate(dialogue["turns"]):
        sents = split_sentences(turn["text"])
        p_hes = caller_hesitation if turn["speaker"] == "caller" else 0.2
        hes_at = -1
        long_ones = [j for j, s in enumerate(sents) if len(s.split()) >= 5]
        if long_ones and rng.random() < p_hes:
            hes_at = long_ones[int(rng.integers(len(long_ones)))]
        for j, s in enumerate(sents):
            if j == hes_at:
                words = s.split()
                cut = int(rng.integers(2, len(words) - 1))
                first = " ".join(words[:cut]).rstrip(",.?!") + HESITATIONS[int(rng.integers(len(HESITATIONS)))]
                pieces.append({"turn": k, "speaker": turn["speaker"], "kind": "fragment", "text": first})
                rest = " ".join(words[cut:])
                pieces.append({"turn": k, "speaker": turn["speaker"], "kind": "sentence", "text": rest})
            else:
                pieces.append({"turn": k, "speaker": turn["speaker"], "kind": "sentence", "text": s})
    for role, pool, n in (("agent", AGENT_BACKCHANNELS, 3), ("caller", CALLER_BACKCHANNELS, 2)):
        for j in rng.choice(len(pool), size=n, replace=False):
            pieces.append({"turn": -1, "speaker": role, "kind": "backchannel", "text": pool[int(j)]})
    return {"voices": voices, "pieces": pieces}


def synthesize(text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
    """espeak-ng (22.05 kHz WAV on stdout) -> FFT resampling to 16 kHz mono float32 (one process
    per piece instead of espeak-ng | sox: the dialogue corpus has many short pieces)."""
    import io
    import subprocess
    import wave

    res = subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout", text],
                         capture_output=True)
    if res.returncode != 0 or not res.stdout:
        raise SpeechError(f"espeak-ng failed for voice {voice}: {res.stderr.decode(errors='replace').strip()}")
    with wave.open(io.BytesIO(res.stdout)) as w:
        sr = w.getframerate()
        # espeak-ng streams to stdout with a placeholder length in the header: read all frames
        raw = res.stdout[44:] if w.getnframes() in (0, 0x7FFFFFFF) or w.getnframes() * 2 > len(res.stdout) else \
            w.readframes(w.getnframes())
    x = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.float64) / 32768.0
    if x.size == 0:
        raise SpeechError(f"espeak-ng produced no audio for voice {voice}: {text!r}")
    if sr == SAMPLE_RATE:
        return x.astype(np.float32)
    m = int(round(len(x) * SAMPLE_RATE / sr))
    spec = np.fft.rfft(x)
    keep = m // 2 + 1
    spec = spec[:keep] if len(spec) >= keep else np.concatenate([spec, np.zeros(keep - len(spec), complex)])
    taper = np.ones(keep)
    edge = max(1, int(keep * 0.04))  # soft edge below Nyquist (no ringing from a brick wall)
    taper[-edge:] = np.linspace(1.0, 0.0, edge)
    return (np.fft.irfft(spec * taper, m) * (m / len(x))).astype(np.float32)


def trim(audio: np.ndarray, rel: float = 0.01) -> np.ndarray:
    """Drops leading/trailing samples below `rel` of the peak (espeak's silence), 10 ms kept."""
    a = np.abs(audio)
    peak = float(a.max()) if a.size else 0.0
    if peak <= 0:
        return audio[:0]
    idx = np.flatnonzero(a > rel * peak)
    lo = max(0, idx[0] - 160)
    hi = min(len(audio), idx[-1] + 160)
    return audio[lo:hi]


def speak(text: str, voice: dict) -> np.ndarray:
    """One piece in a speaker's voice, trimmed, at -20 dBFS RMS."""
    audio = trim(synthesize(text, voice["voice"], voice["rate"], voice["pitch"]))
    if audio.size < 800:
        audio = np.concatenate([audio, np.zeros(800 - audio.size, np.float32)])
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) + 1e-9
    return (audio * (0.1 / rms)).clip(-1, 1).astype(np.float32)


def synthesize_dialogue(dialogue: dict, seed: int, index: int, variants: list[str], path: Path | None = None,
                        caller_hesitation: float = CALLER_HESITATION) -> dict:
    """Synthesises (or loads from `path`) every piece; returns the plan with `audio` per piece."""
    plan = plan_pieces(dialogue, seed, index, variants, caller_hesitation)
    if path is not None and Path(path).exists():
        data = np.load(path, allow_pickle=False)
        if int(data["format"]) == PIECES_FORMAT and len(data["lengths"]) == len(plan["pieces"]):
            flat = data["audio"].astype(np.float32) / 32768.0
            offs = np.concatenate([[0], np.cumsum(data["lengths"])])
            for p, a, b in zip(plan["pieces"], offs[:-1], offs[1:]):
                p["audio"] = flat[a:b]
            return plan
    for p in plan["pieces"]:
        p["audio"] = speak(p["text"], plan["voices"][p["speaker"]])
    if path is not None:
        lengths = np.array([len(p["audio"]) for p in plan["pieces"]], np.int64)
        flat = np.concatenate([p["audio"] for p in plan["pieces"]])
        tmp = Path(f"{path}.tmp.npz")
        np.savez(tmp, format=np.int64(PIECES_FORMAT), lengths=lengths,
                 audio=np.round(flat * 32767).astype(np.int16))
        os.replace(tmp, path)
    return plan


# ---------------------------------------------------------------- timing

def draw_gap(rng: np.random.Generator, next_speaker: str, stage: int, agent_timing: str = "human") -> float:
    """Floor-transfer offset in seconds before a turn of `next_speaker` (negative = overlap).

    Human telephone conversation: the mode is ~200 ms, most gaps lie in 0-500 ms, a tail of
    longer gaps, and 10-20 % overlaps (Heldner & Edlund 2010; Levinson & Torreira 2015). The
    agent (the model's side) overlaps rarely and briefly, the caller more often.
    `agent_timing` sets the agent's gaps (the same draws, mapped, so every other event stays the
    same): "human"; "prompt" (composition 4), 0.04-0.35 s, no long gaps; "informed"
    (composition 5), 0.23-0.58 s and the long gaps, no overlaps; "patient" (composition 7),
    "informed" with the long gaps stretched to 0.5-2.0 s. The engine decides the agent's
    chunk n+1 before the caller's chunk n is heard (SyncLLM predicts it), i.e. a chunk (160 ms)
    less informed than the data's agent, which reacts to chunk n: answers that come sooner than a
    chunk plus a moment after the caller stops can only be guessed, in pauses too."""
    u = rng.random()
    p_overlap = 0.15 if next_speaker == "caller" else 0.04
    timing = agent_timing if next_speaker == "agent" else "human"
    informed = timing in ("informed", "patient")
    if u < p_overlap:
        g = float(rng.uniform(0.05, 0.4 if next_speaker == "caller" else 0.15))
        return 0.25 + (g - 0.05) if informed else -g
    if u < p_overlap + 0.12:
        g = float(rng.uniform(0.5, 1.2))
        if timing == "patient":
            return 0.5 + (g - 0.5) / 0.7 * 1.5
        return 0.15 + (g - 0.5) / 0.7 * 0.2 if timing == "prompt" else g
    g = float(np.clip(rng.gamma(4.0, 0.065), 0.04, 0.5))  # mean ~0.26 s
    if timing == "prompt":
        return float(np.clip(0.75 * g, 0.04, 0.35))
    return 0.2 + 0.75 * g if informed else g


def _faded(audio: np.ndarray, n: int, fade: float = 0.03) -> np.ndarray:
    """The first `n` samples of `audio`, a copy whose last `fade` s fade out (a speaker who stops)."""
    out = audio[:n].copy()
    f = min(len(out), int(fade * SAMPLE_RATE))
    if f > 0:
        out[-f:] *= np.linspace(1.0, 0.0, f, dtype=np.float32)
    return out


class Channel:
    def __init__(self):
        self.items: list[tuple[int, np.ndarray]] = []
        self.segments: list[list[float]] = []

    def place(self, t: float, audio: np.ndarray) -> float:
        start = int(round(max(0.0, t) * SAMPLE_RATE))
        self.items.append((start, audio))
        end = (start + len(audio)) / SAMPLE_RATE
        self.segments.append([start / SAMPLE_RATE, end])
        return end

    def cut(self, t: float, fade: float = 0.03) -> None:
        """Stops the channel at `t` (the last item is faded out over `fade` s and truncated)."""
        keep = []
        for start, audio in self.items:
            s0 = start / SAMPLE_RATE
            if s0 >= t:
                continue
            n = int(round((t - s0) * SAMPLE_RATE))
            keep.append((start, _faded(audio, n, fade) if n < len(audio) else audio))
        self.items = keep
        self.segments = [[a, min(b, t)] for a, b in self.segments if a < t]

    @property
    def end(self) -> float:
        return max((s[1] for s in self.segments), default=0.0)

    def render(self, n: int, gain: float) -> np.ndarray:
        out = np.zeros(n, np.float32)
        for start, audio in self.items:
            m = min(len(audio), n - start)
            if m > 0:
                out[start:start + m] += audio[:m] * gain
        return out


def merge_segments(segs: list[list[float]], gap: float = 0.05) -> list[list[float]]:
    out: list[list[float]] = []
    for a, b in sorted(segs):
        if out and a - out[-1][1] < gap:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [[round(a, 3), round(b, 3)] for a, b in out]


FALSE_START_SHARE = 0.6  # of long caller turns (compositions 3-7)


def _false_start(agent: Channel, caller: Channel, events: dict, dialogue: dict, by_turn: dict, k: int,
                 start: float, end: float, boundaries: list, hesitations: list, rng: np.random.Generator) -> None:
    """Composition 3: the agent starts its answer too early, at one of a long caller turn's sentence
    ends (or mid-sentence), the caller goes on, and the agent stops 0.1-0.45 s after the caller's
    speech resumes (as an interrupted agent does). The data has no other agent speech that starts
    over a caller who keeps talking, and without it the model, once it had started over the
    caller, went on talking for seconds (eval turn items; tools/recipe/README.md)."""
    nxt = by_turn.get(k + 1, [])
    if rng.random() >= FALSE_START_SHARE or not nxt or dialogue["turns"][k + 1]["speaker"] != "agent":
        return
    audio = nxt[0]["audio"]
    inner = [(b, gap) for b, gap in boundaries if b + gap < end - 1.0]
    if inner and rng.random() < 0.7:
        bt, _gap = inner[int(rng.integers(len(inner)))]
        at = bt + float(rng.uniform(0.05, 0.25))  # taken for a turn end
    else:
        # mid-sentence: the agent mistimes its answer outright
        if end - start < 2.5:
            return
        at = float(rng.uniform(start + 1.0, end - 1.0))
    # the caller's speech at or after the agent's onset
    resume = min((max(a, at) for a, b in caller.segments if b > at), default=end)
    stop = max(at + 0.12, resume) + float(rng.uniform(0.1, 0.45))
    if stop > end - 0.5 or stop - at > len(audio) / SAMPLE_RATE:
        return
    if not all(stop + 0.3 < a or at > b + 0.3 for a, b in agent.segments):
        return
    if not all(stop < a or at > b for a, b in hesitations):
        return
    agent.place(at, _faded(audio, int(round((stop - at) * SAMPLE_RATE))))
    events["falseStarts"].append({"start": round(at, 3), "agentStop": round(stop, 3)})


def _last_answer(agent: Channel, turns: list, pieces: list, prev_end: float, stage: int, agent_timing: str,
                 rng: np.random.Generator) -> None:
    """Compositions 6 and 7: the agent answers the dialogue's last caller turn (its text has no
    answer) with one of its own sentences, after the usual gap. Otherwise the sample's closing
    silence is the only place where a finished turn goes unanswered (one caller turn end in nine),
    which could teach a model that had not answered within the data's answer window that no
    answer comes. Trained three times each, it answered no more turns (tools/recipe/README.md)."""
    own = [p for p in pieces if p["speaker"] == "agent" and p["kind"] == "sentence"]
    if not own:
        return
    audio = own[int(rng.integers(len(own)))]["audio"]
    start = max(prev_end + draw_gap(rng, "agent", stage, agent_timing=agent_timing), agent.end + 0.05)
    end = agent.place(start, audio)
    turns.append({"speaker": "agent", "start": round(start, 3), "end": round(end, 3), "interrupted": False})


def compose(plan: dict, dialogue: dict, stage: int, rng: np.random.Generator, *, caller_degrade: bool = True,
            tail: float | None = None, composition: int = COMPOSITION) -> dict:
    """Places the pieces on two channels (stage 2 or 3 timing). Returns
    `{caller, agent (float32 arrays), callerSpeech, agentSpeech, turns, events}`."""
    pieces = plan["pieces"]
    by_turn: dict[int, list[dict]] = {}
    for p in pieces:
        if p["turn"] >= 0:
            by_turn.setdefault(p["turn"], []).append(p)
    bcs = {r: [p for p in pieces if p["kind"] == "backchannel" and p["speaker"] == r] for r in ("caller", "agent")}
    ch = {"caller": Channel(), "agent": Channel()}
    t = float(rng.uniform(0.2, 1.2))
    turns = []  # {speaker, start, end, interrupted}
    events = {"callerEnds": [], "pauses": [], "interruptions": [], "backchannels": []}
    if composition not in COMPOSITION_RULES:
        raise ValueError(f"composition must be one of {COMPOSITIONS}, got {composition}")
    rules = COMPOSITION_RULES[composition]
    # The false starts draw from a stream of their own (spawning does not advance `rng`), so every
    # other event is the same as in composition 1.
    false_start_rng = rng.spawn(1)[0] if rules.false_starts else None
    if rules.false_starts:
        events["falseStarts"] = []
    agent_timing = rules.agent_timing
    prev_end = t
    n_turns = len(dialogue["turns"])
    k = 0
    while k < n_turns:
        turn_pieces = by_turn.get(k, [])
        if not turn_pieces:
            k += 1
            continue
        speaker = dialogue["turns"][k]["speaker"]
        start = prev_end + draw_gap(rng, speaker, stage, agent_timing=agent_timing) if turns else t
        start = max(start, 0.05)
        # Never start before the other channel's previous turn began (a negative gap overlaps its end).
        cur = start
        boundaries = []  # (time, pause) between sentences of this turn (not hesitations: see below)
        hesitations = []  # (start, end) of this turn's pauses after a hesitation
        for j, p in enumerate(turn_pieces):
            if j > 0:
                prevp = turn_pieces[j - 1]
                if prevp["kind"] == "fragment":
                    if stage >= 3 and speaker == "caller":
                        pause = float(rng.uniform(0.6, 1.6))
                        events["pauses"].append([round(cur, 3), round(cur + pause, 3)])
                    else:
                        pause = float(rng.uniform(0.15, 0.4))
                else:
                    pause = float(rng.uniform(0.06, 0.3))
                if prevp["kind"] == "fragment":
                    hesitations.append((cur, cur + pause))
                else:
                    # The listener back-channels at sentence ends, never into a hesitation pause:
                    # there the agent must stay quiet (a back-channel onset there looks, to the
                    # model, just like taking the floor).
                    boundaries.append((cur, pause))
                cur += pause
            cur = ch[speaker].place(cur, p["audio"])
        end = cur
        turn = {"speaker": speaker, "start": round(start, 3), "end": round(end, 3), "interrupted": False}
        if stage >= 3 and end - start > 2.5 and rng.random() < 0.6:
            # back-channel of the listener during a long turn: at a sentence boundary or mid-speech
            listener = "agent" if speaker == "caller" else "caller"
            for _ in range(int(rng.integers(1, 3))):
                pool = bcs[listener]
                if not pool:
                    break
                bc = pool[int(rng.integers(len(pool)))]["audio"]
                if boundaries and rng.random() < 0.7:
                    bt, _gap = boundaries[int(rng.integers(len(boundaries)))]
                    at = bt + float(rng.uniform(0.0, 0.25))
                else:
                    at = float(rng.uniform(start + 1.0, end - 1.0))
                if at + len(bc) / SAMPLE_RATE < end - 0.3 and all(
                        at > b + 0.3 or at + len(bc) / SAMPLE_RATE < a - 0.3 for a, b in ch[listener].segments) and all(
                        at + len(bc) / SAMPLE_RATE < a or at > b + 0.2 for a, b in hesitations):
                    e = ch[listener].place(at, bc)
                    events["backchannels"].append({"speaker": listener, "start": round(at, 3), "end": round(e, 3)})
        if stage >= 3 and rules.false_starts and speaker == "caller":
            _false_start(ch["agent"], ch["caller"], events, dialogue, by_turn, k, start, end, boundaries, hesitations,
                         false_start_rng)
        # interruption: the caller cuts into a long agent turn; the agent stops shortly after
        if (stage >= 3 and speaker == "agent" and k + 1 < n_turns and end - start > 2.2
                and dialogue["turns"][k + 1]["speaker"] == "caller" and rng.random() < 0.4):
            at = float(rng.uniform(start + 0.8, end - 0.6))
            # Composition 2: the agent stands for what we want of the model, yielding at once (a
            # person takes 0.2-0.5 s). One draw either way, so the other events stay the same.
            stop = at + float(rng.uniform(*((0.05, 0.3) if rules.fast_yield else (0.1, 0.45))))
            ch["agent"].cut(stop)
            turn["end"] = round(stop, 3)
            turn["interrupted"] = True
            events["interruptions"].append({"start": round(at, 3), "agentStop": round(stop, 3)})
            turns.append(turn)
            # the caller's next turn starts at `at`
            nxt = by_turn.get(k + 1, [])
            cur = at
            for j, p in enumerate(nxt):
                if j > 0:
                    cur += float(rng.uniform(0.06, 0.3))
                cur = ch["caller"].place(cur, p["audio"])
            turns.append({"speaker": "caller", "start": round(at, 3), "end": round(cur, 3), "interrupted": False})
            events["callerEnds"].append(round(cur, 3))
            prev_end = max(cur, stop)
            k += 2
            continue
        turns.append(turn)
        if speaker == "caller":
            events["callerEnds"].append(round(end, 3))
        prev_end = max(end, ch["agent"].end if speaker == "agent" else end)
        k += 1
    if rules.answer_last_turn and turns and turns[-1]["speaker"] == "caller":
        # from a stream of its own, spawned after the false starts' (spawning does not advance `rng`)
        _last_answer(ch["agent"], turns, pieces, prev_end, stage, agent_timing, rng.spawn(1)[0])
    after = float(rng.uniform(0.5, 1.5)) if tail is None else tail
    if (rules.end_unanswered and tail is None and turns and turns[-1]["speaker"] == "caller"
            and ch["caller"].end > ch["agent"].end):
        # The dialogue's last caller turn has no answer in the text; the silence after it is the
        # only place where a finished turn goes unanswered (one caller turn end in nine), and so
        # the only example of a turn end still unanswered after 1.2 s. Composition 2 ends there.
        after = 0.1
    total = max(ch["caller"].end, ch["agent"].end) + after
    n = int(np.ceil(total * SAMPLE_RATE))
    agent = ch["agent"].render(n, 10 ** (float(rng.uniform(-22, -12)) / 20) / 0.1)
    caller = ch["caller"].render(n, 10 ** (float(rng.uniform(-26, -8)) / 20) / 0.1)
    degrade = degrade_caller(caller, rng) if caller_degrade else ("clean", caller)
    return {"caller": degrade[1], "agent": agent, "callerDegradation": degrade[0],
            "callerSpeech": merge_segments(ch["caller"].segments), "agentSpeech": merge_segments(ch["agent"].segments),
            "turns": turns, "events": events, "seconds": round(n / SAMPLE_RATE, 3)}


def degrade_caller(audio: np.ndarray, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """clean (45 %), noise (30 %, SNR 12-35 dB), G.711 (15 %), noise + G.711 (10 %)."""
    u = rng.random()
    kind = "clean" if u < 0.45 else "noise" if u < 0.75 else "g711" if u < 0.9 else "noise+g711"
    out = audio
    if "noise" in kind:
        speech = audio[np.abs(audio) > 1e-4]
        rms = float(np.sqrt(np.mean(speech.astype(np.float64) ** 2))) if speech.size else 0.01
        snr = float(rng.uniform(12, 35))
        color = ["white", "pink", "brown"][int(rng.integers(3))]
        out = out + colored_noise(rng, len(out), color) * rms * 10 ** (-snr / 20)
    if "g711" in kind:
        out = telephone_g711(np.clip(out, -1, 1), "ulaw" if rng.random() < 0.6 else "alaw")
    return kind, np.clip(out, -1, 1).astype(np.float32)


# ---------------------------------------------------------------- tokenizer

class UnitsTokenizer:
    """The default speech-units model (duet.units/1) on onnxruntime, offline over whole channels."""

    def __init__(self, directory: Path, threads: int = 1):
        import json

        import onnxruntime as ort

        directory = Path(directory)
        self.manifest = json.loads((directory / "manifest.json").read_text())
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(directory / self.manifest["model"]), so,
                                            providers=["CPUExecutionProvider"])
        self.spu = int(self.manifest["samplesPerUnit"])
        self.unit_count = int(self.manifest["unitCount"])
        self.silence_unit = int(self.manifest.get("silenceUnit", 0))

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        return self.onnx(audio)

    def onnx(self, audio: np.ndarray) -> np.ndarray:
        n = (len(audio) + self.spu - 1) // self.spu * self.spu
        a = np.zeros((1, max(n, self.spu)), np.float32)
        a[0, :len(audio)] = audio
        out = []
        step = self.spu * 1500  # 60 s pieces (the model has 240 samples of left context: overlap one unit)
        for s in range(0, a.shape[1], step):
            lo = max(0, s - self.spu)
            u = self.session.run(["units"], {"audio": a[:, lo:s + step]})[0][0]
            out.append(u[(s - lo) // self.spu:])
        return np.concatenate(out).astype(np.int64)
