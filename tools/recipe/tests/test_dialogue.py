"""The dialogue recipe: text corpus, sequence format (cross-checked with packages/sync), and a tiny
end-to-end run (data -> stages 1/2/3 -> export -> ONNX -> eval set -> measurement)."""

import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from duet_recipe.dialogues import DialogueError, generate_dialogue, generate_dialogues, load_dialogues
from duet_recipe.sequence import Vocab, dedup_chunk, expand_agent, interleave, turn_based

REPO = Path(__file__).resolve().parents[3]
SYNC_DIST = REPO / "packages/sync/dist"
NODE_SCRIPT = Path(__file__).with_name("sync_sequence.mjs")


def _need_tools():
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        if os.environ.get("CI"):
            pytest.fail("espeak-ng and sox are missing although scripts/setup.sh installs them")
        pytest.skip("espeak-ng and sox are needed (scripts/setup.sh installs them)")


def test_generator_is_seeded_and_varied():
    a = generate_dialogues(40, seed=5)
    assert a == generate_dialogues(40, seed=5)
    assert a != generate_dialogues(40, seed=6)
    assert len({d["topic"] for d in a}) >= 8
    for d in a:
        assert 6 <= len(d["turns"]) <= 12
        sp = [t["speaker"] for t in d["turns"]]
        assert all(x != y for x, y in zip(sp, sp[1:])) and set(sp) == {"caller", "agent"}
    assert generate_dialogue(5, 3) == a[3]


def test_loader_formats(tmp_path):
    j = tmp_path / "d.jsonl"
    j.write_text("\n".join([
        json.dumps({"turns": ["Hi there.", "Hello, how can I help?", "I lost my key.", "Oh no."]}),
        json.dumps({"dialog": [{"speaker": "A", "text": "One."}, {"speaker": "A", "text": "Two."},
                               {"speaker": "B", "text": "Three."}]}),
        json.dumps({"turns": [{"role": "agent", "content": "Hello."}, {"role": "user", "content": "Hi."}]}),
    ]) + "\n")
    d = load_dialogues(j)
    assert [t["speaker"] for t in d[0]["turns"]] == ["caller", "agent", "caller", "agent"]
    assert d[1]["turns"] == [{"speaker": "caller", "text": "One. Two."}, {"speaker": "agent", "text": "Three."}]
    assert [t["speaker"] for t in d[2]["turns"]] == ["agent", "caller"]
    t = tmp_path / "d.txt"
    t.write_text("Ann: Hello?\nBob: Hi Ann.\n\nfirst line\nsecond line\nthird line\n")
    d = load_dialogues(t)
    assert len(d) == 2 and d[0]["turns"][1] == {"speaker": "agent", "text": "Hi Ann."}
    assert len(d[1]["turns"]) == 3
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"turns": ["only one"]}) + "\n")
    with pytest.raises(DialogueError):
        load_dialogues(bad)


def test_interleave_format_by_hand():
    v = Vocab.default(10)  # units 0..9, [S0] 10, [S1] 11
    agent = [9, 9, 9, 9, 1, 1, 2, 2, 2, 2, 2, 2]
    user = [3, 3, 4, 4, 4, 4, 4, 4, 5, 6, 6, 5]
    assert interleave(np.array(agent), np.array(user), 4, v) == [
        10, 11, 3, 4,      # chunk 0: the agent's first chunk is always empty; user 3 3 4 4 -> 3 4
        10, 1, 2,          # chunk 1: agent 1 1 2 2; user 4 4 4 4 repeats its last unit: no [S1]
        10, 11, 5, 6, 5,   # chunk 2: agent 2 2 2 2 repeats: nothing; user 5 6 6 5
    ]
    assert dedup_chunk([1, 1, 2], 1) == [2]
    assert turn_based([("caller", np.array([1, 1, 2])), ("agent", np.array([3, 3]))], v) == [11, 1, 2, 10, 3]
    assert expand_agent(interleave(np.array(agent), np.array(user), 4, v), v, 4, 0) == \
        [0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2]


def _node_history(agent, user, unit_count, chunk_ms):
    payload = json.dumps({"unitCount": unit_count, "chunkMs": chunk_ms, "agent": [int(x) for x in agent],
                          "user": [int(x) for x in user]})
    res = subprocess.run(["node", str(NODE_SCRIPT), str(SYNC_DIST)], input=payload, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["base"] == 0
    return out["tokens"]


@pytest.mark.parametrize("chunk_ms", [160, 200, 240])
def test_sequence_equals_packages_sync(chunk_ms):
    """The recipe's training sequences are the token history the engine's CallTimeline builds."""
    if shutil.which("node") is None or not (SYNC_DIST / "index.js").exists():
        if os.environ.get("CI"):
            pytest.fail("node and packages/sync/dist (pnpm build) are needed")
        pytest.skip("needs node and packages/sync/dist (pnpm build)")
    rng = np.random.default_rng(chunk_ms)
    u = chunk_ms // 40
    n_units = u * 60
    # runs of units, silences (one unit held: the [S1] / agent units disappear), speech
    def channel():
        out = []
        while len(out) < n_units:
            if rng.random() < 0.3:
                out += [4] * int(rng.integers(1, 3 * u))
            else:
                out += [int(x) for x in rng.integers(0, 128, int(rng.integers(1, 2 * u)))
                        for _ in range(int(rng.integers(1, 3)))]
        return np.array(out[:n_units])

    v = Vocab.default(128)
    agent, user = channel(), channel()
    node = _node_history(np.concatenate([agent, agent[:u]]), user, 128, chunk_ms)
    py = interleave(agent, user, u, v)
    # after the last user chunk the engine's history holds the agent's next chunk as well
    assert node[:len(py)] == py
    assert node[len(py)] == v.s0
    assert node[len(py) + 1:] == [v.unit_base + x for x in dedup_chunk(agent[:u], _last_agent_unit(agent, u))]


def _last_agent_unit(agent, u):
    last = None
    n = len(agent) // u
    for j in range(1, n):
        d = dedup_chunk(agent[j * u:(j + 1) * u], last)
        if d:
            last = d[-1]
    return last


def test_decision_chunks_cover_turn_ends_and_pauses():
    from duet_recipe.dialogue_model import decision_chunks

    meta = {"events": {"callerEnds": [1.0], "pauses": [[2.5, 2.9]]}}
    d = decision_chunks(meta, 0.16, 25, after_end_s=0.5)
    # turn end at 1.0 s: chunks 6 (0.96-1.12) .. 9 (1.44-1.60); pause 2.5-2.9 s: chunks 15 .. 18
    assert np.flatnonzero(d).tolist() == [6, 7, 8, 9, 15, 16, 17, 18]
    assert not decision_chunks({}, 0.16, 10).any()
    # one kind at a time (--decision-weight for turn ends, --pause-weight for pauses)
    assert np.flatnonzero(decision_chunks(meta, 0.16, 25, after_end_s=0.5, kinds=("ends",))).tolist() == [6, 7, 8, 9]
    assert np.flatnonzero(decision_chunks(meta, 0.16, 25, kinds=("pauses",))).tolist() == [15, 16, 17, 18]
    # spans past the sample's end are clipped
    assert decision_chunks({"events": {"callerEnds": [1.5]}}, 0.16, 10).tolist()[-1]
    # an interruption: from the caller's onset until after_end_s after the agent stopped
    barge = {"events": {"interruptions": [{"start": 2.0, "agentStop": 2.2}]}}
    assert np.flatnonzero(decision_chunks(barge, 0.16, 25, after_end_s=0.3, kinds=("interruptions",))).tolist() == [
        12, 13, 14, 15]
    assert not decision_chunks(barge, 0.16, 25).any()  # not one of the default kinds
    # a false start (composition 3) counts as an interruption: the agent yields to the caller
    false_start = {"events": {"falseStarts": [{"start": 2.0, "agentStop": 2.2}]}}
    assert np.flatnonzero(decision_chunks(false_start, 0.16, 25, after_end_s=0.3, kinds=("interruptions",))).tolist() \
        == [12, 13, 14, 15]


def test_caller_hesitation_share():
    """--caller-hesitation: the share of caller turns that get a hesitation (a mid-turn pause in
    stage 3); the voices do not depend on it."""
    from duet_recipe.dialogues import generate_dialogue
    from duet_recipe.duplex import plan_pieces

    def fragments(share):
        n = 0
        for i in range(40):
            plan = plan_pieces(generate_dialogue(0, i), 0, i, [""], share)
            n += sum(1 for p in plan["pieces"] if p["kind"] == "fragment" and p["speaker"] == "caller")
        return n

    none, some, most = fragments(0.0), fragments(0.45), fragments(0.9)
    assert none == 0 and 0 < some < most
    d = generate_dialogue(0, 7)
    assert plan_pieces(d, 0, 7, [""], 0.0)["voices"] == plan_pieces(d, 0, 7, [""], 1.0)["voices"]
    from duet_recipe.cli import main

    with pytest.raises(SystemExit):
        main(["dialogue-data", "--out", "/tmp/never", "--caller-hesitation", "1.5"])
    with pytest.raises(SystemExit):
        main(["dialogue-data", "--out", "/tmp/never", "--composition", "9"])


def _piece(turn, speaker, kind, seconds):
    return {"turn": turn, "speaker": speaker, "kind": kind, "audio": np.full(int(seconds * 16000), 0.1, np.float32)}


def test_compose_ends_after_an_unanswered_last_caller_turn():
    """Composition 2: a dialogue whose text ends with a caller turn has no answer to it, so the
    sample ends 0.1 s after the caller stopped; one that ends with the agent keeps a 0.5-1.5 s
    tail, as every sample does in compositions 1 and 3 (the default)."""
    from duet_recipe.duplex import compose

    for last in ("caller", "agent"):
        speakers = ["caller", "agent", "caller"] + (["agent"] if last == "agent" else [])
        turns = [{"speaker": sp, "text": "x"} for sp in speakers]
        pieces = [_piece(k, sp, "sentence", 1.0) for k, sp in enumerate(speakers)]
        for seed, composition in itertools.product(range(20), (1, 2)):
            s = compose({"voices": {}, "pieces": pieces}, {"turns": turns}, 3, np.random.default_rng(seed),
                        caller_degrade=False, composition=composition)
            speech_end = max(e for _a, e in s["callerSpeech"] + s["agentSpeech"])
            tail = s["seconds"] - speech_end
            if last == "caller" and composition == 2:
                assert s["callerSpeech"][-1][1] == speech_end and abs(tail - 0.1) < 1e-3, (seed, tail)
            else:
                assert 0.5 <= tail <= 1.5 + 1e-6, (seed, tail)
        # an explicit tail (the eval set's dialogues) is kept as given
        s = compose({"voices": {}, "pieces": pieces}, {"turns": turns}, 3, np.random.default_rng(0),
                    caller_degrade=False, tail=1.0, composition=2)
        assert abs(s["seconds"] - max(e for _a, e in s["callerSpeech"] + s["agentSpeech"]) - 1.0) < 1e-3


def test_compose_interrupted_agent_stops():
    """Stage 3 interruptions: the caller starts inside a long agent turn; the agent stops 0.1-0.45 s
    later (compositions 2 and 8, fast yield: 0.05-0.3 s) and its channel is silent from there. The
    compositions draw alike, so the same seed gives the same interruptions (8 as 5, 2 as 1)."""
    from duet_recipe.duplex import compose

    speakers = ["agent", "caller"] * 3
    turns = [{"speaker": sp, "text": "x"} for sp in speakers]
    pieces = []
    for k, sp in enumerate(speakers):
        pieces += [_piece(k, sp, "sentence", 1.5), _piece(k, sp, "sentence", 1.5)] if sp == "agent" else [
            _piece(k, sp, "sentence", 1.0)]
    seen = 0
    for seed in range(40):
        starts = {}
        for composition, (lo, hi) in ((1, (0.1, 0.45)), (2, (0.05, 0.3)), (5, (0.1, 0.45)), (8, (0.05, 0.3))):
            s = compose({"voices": {}, "pieces": pieces}, {"turns": turns}, 3, np.random.default_rng(seed),
                        caller_degrade=False, composition=composition)
            starts[composition] = [it["start"] for it in s["events"]["interruptions"]]
            for it in s["events"]["interruptions"]:
                seen += 1
                assert lo - 1e-3 <= it["agentStop"] - it["start"] <= hi + 1e-3
                i = int(round(it["agentStop"] * 16000)) + 16
                assert not np.abs(s["agent"][i:int(round((it["agentStop"] + 0.2) * 16000))]).any()
        assert starts[1] == starts[2] and starts[5] == starts[8]
    assert seen > 40


def test_sequences_weigh_the_agents_decisions(monkeypatch):
    """Stage-3 loss weights on a sample's real tokens: the agent's tokens (and [S1]) weigh 1, the
    caller's units 0.5; times the decision weight for 1 s after a caller's turn end, the pause
    weight in a pause, and the interruption weight from an interruption or a false start until
    1 s after the agent stopped (where no other span applies)."""
    from duet_recipe import dialogue_model
    from duet_recipe.dialogue_model import Sequences
    from duet_recipe.sequence import Vocab

    vocab = Vocab.default(16)
    n = 25 * 12  # 12 s of units; every chunk different on both sides, so no unit is deduplicated away
    agent = (np.arange(n) % 7 + 1).astype(np.uint8)
    user = (np.arange(n) % 5 + 9).astype(np.uint8)
    events = {"callerEnds": [1.6], "pauses": [[4.8, 5.6]], "interruptions": [{"start": 8.0, "agentStop": 8.32}],
              "falseStarts": [{"start": 10.08, "agentStop": 10.4}]}
    meta = {"events": events, "split": "train"}
    monkeypatch.setattr(dialogue_model, "load_stage", lambda data, stage, split: [(meta, agent, user)])
    seq = Sequences(Path("unused"), 3, vocab, [160], decision_weight=3.0, pause_weight=6.0, interruption_weight=4.0)
    toks, w, s0s = seq.seqs[0]
    chunk_of = np.searchsorted(s0s, np.arange(len(toks)), side="right") - 1
    is_agent = np.zeros(len(toks), bool)
    for a, b in zip(s0s, list(s0s[1:]) + [len(toks)]):
        part = toks[a:b]
        k = int(np.flatnonzero(part == vocab.s1)[0]) if (part == vocab.s1).any() else len(part)
        is_agent[a:a + k + 1] = True  # [S0], the agent's units and the [S1] that closes them
    want_chunk = np.ones(int(chunk_of.max()) + 1)
    want_chunk[10:17] = 3.0  # 1.6 s .. 2.6 s
    want_chunk[30:35] = 6.0  # 4.8 s .. 5.6 s
    want_chunk[50:59] = 4.0  # 8.0 s .. 9.32 s
    want_chunk[63:72] = 4.0  # 10.08 s .. 11.4 s (the false start)
    want = np.where(is_agent, want_chunk[chunk_of], 0.5)
    assert np.allclose(w, want)
    # without the weights every agent token weighs 1
    plain = Sequences(Path("unused"), 3, vocab, [160]).seqs[0][1]
    assert np.allclose(plain, np.where(is_agent, 1.0, 0.5))


def test_compose_false_starts():
    """Composition 3: in stage 3 the agent sometimes starts its answer while the caller's long turn
    goes on, and stops 0.1-0.45 s after the caller's speech resumes, well before the caller ends.
    Everything else (stage 2 entirely, and stage 3's caller channel, turns and other events) is
    composition 1's, draw for draw."""
    from duet_recipe.dialogue_data import data_identity
    from duet_recipe.duplex import compose

    speakers = ["caller", "agent"] * 3
    turns = [{"speaker": sp, "text": "x"} for sp in speakers]
    pieces = []
    for k, sp in enumerate(speakers):
        pieces += [_piece(k, sp, "sentence", 1.2) for _ in range(4 if sp == "caller" else 1)]
    seen = 0
    for seed, stage in itertools.product(range(30), (2, 3)):
        plan = {"voices": {}, "pieces": pieces}
        one = compose(plan, {"turns": turns}, stage, np.random.default_rng(seed), caller_degrade=False, composition=1)
        three = compose(plan, {"turns": turns}, stage, np.random.default_rng(seed), caller_degrade=False,
                        composition=3)
        starts = three["events"].pop("falseStarts")
        assert three["events"] == one["events"] and three["turns"] == one["turns"]
        assert np.array_equal(three["caller"], one["caller"])
        if stage == 2:
            assert not starts and np.array_equal(three["agent"], one["agent"])
        for fs in starts:
            seen += 1
            a, b = fs["start"], fs["agentStop"]
            caller_turn = next(t for t in one["turns"] if t["speaker"] == "caller" and t["start"] < a < t["end"])
            assert b <= caller_turn["end"] - 0.5
            # the agent stops 0.1-0.45 s after the caller speaks again (at least 0.22 s after its onset)
            resumed = min(max(s, a) for s, e in one["callerSpeech"] if e > a)
            assert 0.1 - 1e-3 <= b - max(resumed, a + 0.12) <= 0.45 + 1e-3
            sl = slice(int(round(a * 16000)) + 16, int(round(b * 16000)) - 16)
            assert np.abs(three["agent"][sl]).min() > 0 and not np.abs(one["agent"][sl]).any()
            after = slice(int(round(b * 16000)) + 16, int(round((b + 0.25) * 16000)))
            assert not np.abs(three["agent"][after]).any()
    assert seen > 5
    # stages 1 and 2 of composition 3 are composition 1's samples: a stage trained on either resumes
    info = {"seed": 0, "composition": 3}
    assert data_identity(info, 2) == data_identity({**info, "composition": 1}, 2)
    assert data_identity(info, 3) != data_identity({**info, "composition": 1}, 3)
    assert data_identity(info) != data_identity({**info, "composition": 1})


def test_compose_agent_timing():
    """Compositions 4 and 5: composition 3 whose agent answers 0.04-0.35 s after the caller's turn
    (4: or overlaps it briefly, as before; never after a person's long gap of 0.5-1.2 s), or
    0.23-0.58 s after it or after a long gap, never in overlap (5); the caller's gaps and every
    other draw are composition 3's."""
    from duet_recipe.duplex import compose

    speakers = ["caller", "agent"] * 4
    turns = [{"speaker": sp, "text": "x"} for sp in speakers]
    pieces = [_piece(k, sp, "sentence", 1.0) for k, sp in enumerate(speakers)]
    gaps = {3: [], 4: [], 5: []}
    caller_gaps = {3: [], 4: [], 5: []}
    for seed, composition in itertools.product(range(40), (3, 4, 5)):
        s = compose({"voices": {}, "pieces": pieces}, {"turns": turns}, 2, np.random.default_rng(seed),
                    caller_degrade=False, composition=composition)
        for prev, nxt in zip(s["turns"], s["turns"][1:]):
            (gaps if nxt["speaker"] == "agent" else caller_gaps)[composition].append(nxt["start"] - prev["end"])
    assert max(gaps[3]) > 0.5 and all(g <= 0.35 + 1e-3 for g in gaps[4])
    assert all(g >= 0.04 - 1e-3 or -0.15 - 1e-3 <= g < 0 for g in gaps[4])
    assert np.mean(gaps[4]) < np.mean(gaps[3]) - 0.1
    assert min(gaps[5]) >= 0.23 - 1e-3 and max(gaps[5]) > 0.6
    assert all(0.23 - 1e-3 <= g <= 0.58 + 1e-3 or 0.5 <= g <= 1.2 + 1e-3 for g in gaps[5])
    for c in (4, 5):
        assert np.allclose(caller_gaps[c], caller_gaps[3], atol=2e-3)


def test_compose_answers_the_last_caller_turn():
    """Compositions 6 and 7: composition 5 whose agent also answers the dialogue's last caller turn
    (with one of its sentences, after an agent gap), so no finished turn goes unanswered; every
    other event and both channels before that answer are composition 5's. Composition 7 stretches
    the agent's long gaps to 0.5-2.0 s."""
    from duet_recipe.duplex import compose

    speakers = ["caller", "agent", "caller", "agent", "caller"]
    turns = [{"speaker": sp, "text": "x"} for sp in speakers]
    pieces = [_piece(k, sp, "sentence", 1.0) for k, sp in enumerate(speakers)]
    last_gaps = {6: [], 7: []}
    gaps7 = []
    for seed, stage in itertools.product(range(40), (2, 3)):
        plan = {"voices": {}, "pieces": pieces}
        five = compose(plan, {"turns": turns}, stage, np.random.default_rng(seed), caller_degrade=False, composition=5)
        for c in (6, 7):
            s = compose(plan, {"turns": turns}, stage, np.random.default_rng(seed), caller_degrade=False, composition=c)
            last = s["turns"][-1]
            assert last["speaker"] == "agent"
            if c == 6:
                assert s["events"] == five["events"] and s["turns"][:-1] == five["turns"]
                n = min(len(s["caller"]), len(five["caller"]))
                assert np.array_equal(s["caller"][:n], five["caller"][:n])
            caller_end = s["events"]["callerEnds"][-1]
            last_gaps[c].append(last["start"] - caller_end)
            # the answer is the last speech; a 0.5-1.5 s tail follows it
            assert s["agentSpeech"][-1][1] == max(e for _a, e in s["agentSpeech"] + s["callerSpeech"])
            assert 0.5 - 1e-3 <= s["seconds"] - s["agentSpeech"][-1][1] <= 1.5 + 1e-3
            if c == 7:
                gaps7 += [n["start"] - p["end"] for p, n in zip(s["turns"], s["turns"][1:]) if n["speaker"] == "agent"]
    assert all(0.23 - 1e-3 <= g <= 1.2 + 1e-3 for g in last_gaps[6])
    assert all(0.23 - 1e-3 <= g <= 2.0 + 1e-3 for g in gaps7) and max(gaps7) > 1.2
    # a dialogue that ends with the agent is composed as in composition 5
    plan = {"voices": {}, "pieces": pieces[:4]}
    for seed in range(10):
        five, six = (compose(plan, {"turns": turns[:4]}, 3, np.random.default_rng(seed), caller_degrade=False,
                             composition=c) for c in (5, 6))
        assert six["turns"] == five["turns"] and np.array_equal(six["agent"], five["agent"])


def test_pause_cue():
    """An eval-set pause is marked by a filler or, after a bare comma, by intonation alone."""
    from duet_recipe.duplex import HESITATIONS
    from duet_recipe.evalset import pause_cue

    assert [pause_cue("Can you" + h) for h in HESITATIONS] == ["intonation", "filler", "filler", "filler", "filler"]
    assert pause_cue("Can you deliver that weather,") == "intonation"  # "er," inside a word is no filler


def test_hf_dir_explains_a_missing_checkpoint(tmp_path):
    """dialogue-measure / dialogue-hazard read the Hugging Face checkpoint an exported model was
    made from; when it is not on this machine they say so instead of failing in transformers."""
    from duet_recipe.dialogue_cli import _hf_dir
    from duet_recipe.dialogue_model import DialogueRecipeError

    with pytest.raises(DialogueRecipeError, match="neither"):
        _hf_dir(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"source": {"checkpoint": str(tmp_path / "gone")}}))
    with pytest.raises(DialogueRecipeError, match="not on this machine"):
        _hf_dir(tmp_path)
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "config.json").write_text("{}")
    (tmp_path / "manifest.json").write_text(json.dumps({"source": {"checkpoint": str(tmp_path / "ck")}}))
    assert _hf_dir(tmp_path) == tmp_path / "ck"


def test_compose_keeps_back_channels_out_of_hesitation_pauses():
    """Stage 3: the listener back-channels at sentence ends or mid-speech, never into a caller's
    hesitation pause (there the agent must stay quiet)."""
    from duet_recipe.duplex import compose

    piece = _piece
    pieces = []
    turns = []
    for k in range(6):
        speaker = "caller" if k % 2 == 0 else "agent"
        turns.append({"speaker": speaker, "text": "x"})
        if speaker == "caller":
            pieces += [piece(k, speaker, "sentence", 1.2), piece(k, speaker, "fragment", 0.6),
                       piece(k, speaker, "sentence", 1.0), piece(k, speaker, "sentence", 1.4)]
        else:
            pieces.append(piece(k, speaker, "sentence", 1.5))
    pieces += [piece(-1, "agent", "backchannel", 0.4), piece(-1, "agent", "backchannel", 0.3),
               piece(-1, "caller", "backchannel", 0.3)]
    plan = {"voices": {}, "pieces": pieces}
    n_pauses = n_bcs = 0
    for seed in range(60):
        s = compose(plan, {"turns": turns}, 3, np.random.default_rng(seed), caller_degrade=False)
        pauses = s["events"]["pauses"]
        n_pauses += len(pauses)
        for bc in s["events"]["backchannels"]:
            if bc["speaker"] != "agent":
                continue
            n_bcs += 1
            assert all(bc["end"] < a or bc["start"] > b for a, b in pauses), (seed, bc, pauses)
    assert n_pauses >= 60 and n_bcs > 20  # the test exercised both


def test_silence_onsets_and_hazard_table():
    from duet_recipe.hazard import hazard_table, silence_onsets

    meta = {"events": {"callerEnds": [3.0, 9.0], "pauses": [[5.0, 6.0]]},
            "callerSpeech": [[0.5, 1.8], [2.0, 3.0], [4.0, 5.0], [6.0, 9.0]]}
    assert silence_onsets(meta) == [("sentenceGap", 1.8), ("turnEnd", 3.0), ("pause", 5.0), ("turnEnd", 9.0)]
    assert silence_onsets({}) == []
    # Two onsets: the first answered at chunk 1, the second at chunk 2; the model says 0.5 each chunk.
    rows = {"turnEnd": [[(0.5, False), (0.5, True), (0.5, True)], [(0.5, False), (0.5, False), (0.5, True)]]}
    t = hazard_table(rows, 3)["turnEnd"]
    assert t["onsets"] == 2
    assert [r["n"] for r in t["byChunk"]] == [2, 2, 1]  # chunk 2 only counts the onset not yet answered
    assert [r["truthHazard"] for r in t["byChunk"]] == [0.0, 0.5, 1.0]
    assert [r["truthStillSilent"] for r in t["byChunk"]] == [1.0, 0.5, 0.0]
    assert [r["modelStillSilent"] for r in t["byChunk"]] == [0.5, 0.25, 0.125]
    assert hazard_table({"pause": []}, 3)["pause"] == {"onsets": 0, "byChunk": []}


def test_recipe_end_to_end(tmp_path):
    """A tiny run of the whole recipe: 3 local dialogues -> data -> stages 1-3 -> export -> ONNX."""
    _need_tools()
    import onnxruntime as ort
    import torch

    torch.set_num_threads(2)
    from duet_recipe.cli import main

    text = tmp_path / "d.jsonl"
    text.write_text("\n".join(json.dumps({"turns": t}) for t in [
        ["Hello, is this the bakery?", "Yes, how can I help you today?", "I would like a big chocolate cake, um, "
         "for Saturday. It is for my daughter.", "Of course. That will be twenty dollars."],
        ["Hi.", "Hello, the train to Boston leaves at nine from platform four. It takes two hours.",
         "Great, thank you."],
        ["Can you hear me?", "Yes, I can hear you well.", "Okay, bye."],
    ]) + "\n")
    data, work, out, ev = tmp_path / "data", tmp_path / "work", tmp_path / "model", tmp_path / "evalset"
    assert main(["dialogue-data", "--out", str(data), "--text", str(text), "--dialogues", "3", "--variants", "1",
                 "--quiet"]) == 0
    info = json.loads((data / "data.json").read_text())
    assert info["dialogues"] == 3 and info["stages"]["2"]["samples"] == 3 and info["stages"]["3"]["samples"] == 3
    from duet_recipe.dialogue_model import Sequences

    plain, heavy = (Sequences(data, 3, Vocab.default(128), [160], decision_weight=k) for k in (1.0, 4.0))
    assert all((a[0] == b[0]).all() for a, b in zip(plain.seqs, heavy.seqs))
    assert max(float(w.max()) for _, w, _ in plain.seqs) == 1.0
    assert any((w == 4.0).any() for _, w, _ in heavy.seqs)  # the agent's floor decisions weighted up
    assert all(((w == 4.0) <= (p == 1.0)).all() for (_, p, _), (_, w, _) in zip(plain.seqs, heavy.seqs))
    tiny = ["--layers", "1", "--hidden", "32", "--heads", "2", "--kv-heads", "1", "--intermediate", "64",
            "--batch", "2", "--seq-len", "128", "--threads", "2", "--quiet"]
    init = None
    for stage in (1, 2, 3):
        args = ["dialogue-train", "--data", str(data), "--work", str(work / f"s{stage}"), "--stage", str(stage),
                "--steps", "3", *tiny] + (["--init", str(init)] if init else [])
        assert main(args) == 0
        init = work / f"s{stage}" / "final"
        assert (init / "duet_tokens.json").exists()
    # resumable: more steps continue from state.pt ...
    assert main(["dialogue-train", "--data", str(data), "--work", str(work / "s3"), "--stage", "3", "--steps", "4",
                 "--init", str(work / "s2" / "final"), *tiny]) == 0
    log = [json.loads(x) for x in (work / "s3" / "loss.log").read_text().splitlines()]
    assert log[-1]["step"] == 4
    # ... but not under other loss weights (the floor decisions weighted up), which would mix two trainings
    assert main(["dialogue-train", "--data", str(data), "--work", str(work / "s3"), "--stage", "3", "--steps", "5",
                 "--init", str(work / "s2" / "final"), "--decision-weight", "4", *tiny]) == 2
    # ... but not on other dialogue data (here: data.json says another composition)
    info_text = (data / "data.json").read_text()
    (data / "data.json").write_text(json.dumps({**json.loads(info_text), "composition": 99}))
    assert main(["dialogue-train", "--data", str(data), "--work", str(work / "s3"), "--stage", "3", "--steps", "5",
                 "--init", str(work / "s2" / "final"), *tiny]) == 2
    (data / "data.json").write_text(info_text)
    from duet_recipe.hazard import floor_hazards

    hz = floor_hazards(init, data, split="train", progress=False)
    assert hz["samples"] == 3 and hz["hazards"]["turnEnd"]["onsets"] > 0
    for t in hz["hazards"].values():
        assert all(0.0 <= r["modelHazard"] <= 1.0 and 0.0 <= r["truthHazard"] <= 1.0 for r in t["byChunk"])
    assert main(["dialogue-hazard", "--model", str(init), "--data", str(data), "--split", "train", "--limit", "1",
                 "--quiet"]) == 0
    assert main(["dialogue-export", "--checkpoint", str(init), "--out", str(out), "--quiet"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "duet.synclm" and manifest["tokens"] == {"unitBase": 0, "unitCount": 128, "s0": 128,
                                                                          "s1": 129}
    assert manifest["recipe"]["stage"] == 3 and manifest["architecture"]["maxContext"] == 1024
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(out / "model.onnx"), so, providers=["CPUExecutionProvider"])
    assert {i.name for i in sess.get_inputs()} >= {"input_ids", "rope_cos", "rope_sin", "attn_mask"}
    from duet_export.contract import compare_with_hf, load_hf_model
    from duet_export.graph import llama_shape
    from duet_export.rope import rope_spec

    model = load_hf_model(init)
    diffs = compare_with_hf(model, sess, llama_shape(model.config), rope_spec(model.config),
                            [[128, 129, 3, 4, 128, 5], [128, 7]], [[129, 9, 128], [128, 129, 2]], capacity=12, seed=0)
    assert max(d if isinstance(d, float) else 0.0 for d in (diffs.values() if isinstance(diffs, dict) else diffs)) < 1e-3
    # the eval set (tiny) and the timing measurement run on the trained checkpoint
    assert main(["eval-set", "--out", str(ev), "--tiny", "--quiet"]) == 0
    em = json.loads((ev / "manifest.json").read_text())
    assert em["format"] == "duet.evalset" and em["version"] == 1 and em["sampleRate"] == 16000
    assert em["chunkMs"] == 160
    assert sorted(it["kind"] for it in em["items"]) == sorted(["turn", "pause", "backchannel", "interruption",
                                                               "dialogue", "callerbackchannel"])
    cb = next(it for it in em["items"] if it["kind"] == "callerbackchannel")
    ev_cb = cb["events"]
    # the caller back-channels inside the agent's turn, which goes on past it; the prompt ends before it
    assert ev_cb["backchannelS"] < ev_cb["backchannelEndS"] < ev_cb["agentEndS"]
    assert cb["promptSeconds"] <= ev_cb["backchannelS"] < cb["promptSeconds"] + 0.16
    assert any(a <= ev_cb["backchannelS"] < b for a, b in cb["agentSpeech"])
    for it in em["items"]:
        extra = {"pauseCue"} if it["kind"] == "pause" else set()
        assert set(it) == {"id", "kind", "caller", "agent", "promptSeconds", "callerSpeech", "agentSpeech",
                           "events"} | extra
        assert it.get("pauseCue", "filler") in ("filler", "intonation")
        assert (ev / it["caller"]).stat().st_size == (ev / it["agent"]).stat().st_size
    from duet_recipe.hazard import evalset_hazards

    ehz = evalset_hazards(init, ev, REPO / "models/default/units", progress=False)
    assert ehz["hazards"]["turn"]["items"] == 1 and ehz["hazards"]["pause"]["items"] == 1
    assert all(0.0 <= x <= 1.0 for v in ehz["hazards"].values() for x in v["meanHazardByChunk"])
    assert len(ehz["hazards"]["turn"]["meanHazardByChunk"]) >= 4  # the item runs on 3 s past the caller's end
    assert main(["dialogue-hazard", "--model", str(init), "--evalset", str(ev), "--quiet"]) == 0
    from duet_recipe.measure import measure

    figs = measure(init, ev, REPO / "models/default/units", progress=False)
    assert figs["model"]["items"] == 6 and 0.0 <= figs["model"]["agent_speech_while_caller_speaks"] <= 1.0
    assert figs["groundTruth"]["pause_takeover_rate"] == 0.0 and figs["groundTruth"]["turn_takeover_rate"] == 1.0


def test_default_dialogue_one_command(tmp_path):
    """`default-dialogue` (the committed model's one command) at toy sizes: data, stages 1-3, the
    decision-weighted refinement, export, eval set and measurement; the manifest records it all."""
    _need_tools()
    import torch

    torch.set_num_threads(2)
    from duet_recipe.cli import main

    text = tmp_path / "d.jsonl"
    text.write_text("\n".join(json.dumps({"turns": t}) for t in [
        ["Hello, is this the bakery?", "Yes, how can I help you today?",
         "I would like a big chocolate cake for Saturday. It is for my daughter.", "Of course."],
        ["Hi there.", "Hello, the train to Boston leaves at nine from platform four.", "Great, thank you."],
    ]) + "\n")
    out = tmp_path / "model"
    assert main(["default-dialogue", "--out", str(out), "--data", str(tmp_path / "data"), "--text", str(text),
                 "--dialogues", "2", "--variants", "1", "--work", str(tmp_path / "work"),
                 "--evalset", str(tmp_path / "evalset"), "--evalset-per-kind", "1",
                 "--stage-steps", "2,2,2", "--stage-minutes", "1,1,1", "--refine-steps", "2",
                 "--layers", "1", "--hidden", "32", "--heads", "2", "--kv-heads", "1", "--intermediate", "64",
                 "--batch", "2", "--seq-len", "128", "--quiet"]) == 0
    recipe = json.loads((out / "manifest.json").read_text())["recipe"]
    assert [s["stage"] for s in recipe["stages"]] == [1, 2, 3, 3] and recipe["stages"][3]["refinement"]
    refine = recipe["stages"][3]["settings"]
    assert (refine["lr"], refine["decisionWeight"], refine["pauseWeight"], refine["interruptionWeight"]) == (
        1e-3, 3.0, 6.0, 4.0)
    assert refine["init"].endswith("stage3/final")
    assert recipe["data"]["callerHesitation"] == 0.9 and recipe["data"]["composition"] == 5
    # every stage names the data it was trained on (composition 5 changes stage 2 as well; 3 only stage 3)
    assert [st["settings"]["data"]["composition"] for st in recipe["stages"]] == [5, 5, 5, 5]
    assert recipe["timing"]["model"]["items"] == 3 * 6 and recipe["evalset"]["items"] == 6  # 3 sampled runs
    assert (tmp_path / "work" / "refine" / "final" / "duet_tokens.json").exists()
