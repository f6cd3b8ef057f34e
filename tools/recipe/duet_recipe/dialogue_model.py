"""`dialogue-train` / `dialogue-export` / `default-dialogue`: a small Llama-architecture SyncLLM
trained from scratch on CPU in three stages, exported with tools/export to `duet.synclm/1`.

The model is transformers' `LlamaForCausalLM` (so `duet_export.export.export_llama` exports it
unchanged and a Hugging Face checkpoint comes out of every stage). Vocabulary: the default
tokenizer's units + `[S0]` + `[S1]` (`sequence.Vocab.default`).

Training (`train_stage`): next-token cross-entropy over crops of at most `--seq-len` tokens
(1024 by default = the inference service's default context) of the stage's sequences; crops
start at a chunk's `[S0]` (30 % at the start of the call, as the engine's history does). Loss
weight 1 on the agent side and the tags (the timing decisions: whether the agent speaks in a chunk
and when its chunk closes), 0.5 on the caller's units (the model also predicts the caller, but
the real units replace the prediction). AdamW, linear warm-up then cosine decay to 10 %, gradient
clipping 1.0. Checkpoints (`state.pt`: model, optimiser, step, RNG, loss history) every
`--checkpoint-minutes`; a rerun resumes; at the end `final/` holds a Hugging Face checkpoint
with `duet_tokens.json`. Stage N > 1 starts from stage N-1's `final/` (`--init`).

Stages (sequences from `dialogue-data`):
- 1: turn-based (`sequence.turn_based`), speech only: the paper's first stage without text;
- 2: duplex, no events (stage-2 compositions);
- 3: duplex with overlaps, back-channels, mid-turn pauses and interruptions; a quarter of its
  batches are stage-2 sequences (so stage 2's plain turn-taking is not forgotten).
Chunk sizes: `--chunk-ms 160` (default) or a list such as `160,200,240` (each crop draws one).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from . import RECIPE
from .dialogue_data import data_identity, load_stage
from .sequence import Vocab, interleave, turn_based

USER_UNIT_WEIGHT = 0.5


class DialogueRecipeError(RuntimeError):
    pass


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def model_config(vocab: Vocab, *, layers: int, hidden: int, heads: int, kv_heads: int, intermediate: int,
                 max_context: int):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab.vocab_size, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=hidden // heads,
        max_position_embeddings=max_context, rms_norm_eps=1e-5, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, initializer_range=0.02,
        bos_token_id=None, eos_token_id=None, pad_token_id=None, attn_implementation="sdpa",
    )


class Sequences:
    """Token sequences of one stage (per chunk size), with per-token loss weights."""

    def __init__(self, data: Path, stage: int, vocab: Vocab, chunk_ms: list[int], split: str = "train",
                 decision_weight: float = 1.0, pause_weight: float | None = None,
                 interruption_weight: float = 1.0):
        self.seqs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # tokens, weights, s0 positions
        pw = decision_weight if pause_weight is None else pause_weight
        if stage == 1:
            for _i, turns in load_stage(data, 1, split):
                toks = np.array(turn_based(turns, vocab), np.int64)
                w = np.ones(len(toks), np.float32)
                starts = np.flatnonzero(np.isin(toks, [vocab.s0, vocab.s1]))
                self.seqs.append((toks, w, starts))
        else:
            for meta, agent, user in load_stage(data, stage, split):
                for ms in chunk_ms:
                    toks, chunk, agent_side = interleave(agent, user, ms // 40, vocab, with_chunks=True)
                    toks = np.array(toks, np.int64)
                    own = np.array(agent_side) | (toks == vocab.s1)
                    w = np.where(own, 1.0, USER_UNIT_WEIGHT).astype(np.float32)
                    if decision_weight != 1.0 or pw != 1.0 or interruption_weight != 1.0:
                        n_chunks = int(max(chunk, default=-1)) + 1
                        at = np.array(chunk, np.int64)
                        # A chunk in both spans (a pause right after a turn end) takes the pause's weight.
                        ends = decision_chunks(meta, ms / 1000, n_chunks, kinds=("ends",))[at]
                        pauses = decision_chunks(meta, ms / 1000, n_chunks, kinds=("pauses",))[at]
                        barge = decision_chunks(meta, ms / 1000, n_chunks, kinds=("interruptions",))[at]
                        w[own & ends & ~pauses] *= decision_weight
                        w[own & pauses] *= pw
                        w[own & barge & ~ends & ~pauses] *= interruption_weight
                    self.seqs.append((toks, w, np.flatnonzero(toks == vocab.s0)))
        if not self.seqs:
            raise DialogueRecipeError(f"no stage-{stage} {split} sequences in {data}")
        self.tokens = int(sum(len(s[0]) for s in self.seqs))

    def crop(self, rng: np.random.Generator, seq_len: int):
        toks, w, starts = self.seqs[int(rng.integers(len(self.seqs)))]
        if len(toks) <= seq_len + 1 or rng.random() < 0.3:
            a = 0
        else:
            ok = starts[starts <= len(toks) - seq_len - 1]
            a = int(ok[int(rng.integers(len(ok)))]) if len(ok) else 0
        x = toks[a:a + seq_len + 1]
        ww = w[a:a + seq_len + 1]
        return x, ww


def decision_chunks(meta: dict, chunk_s: float, n: int, after_end_s: float = 1.0,
                    kinds: tuple[str, ...] = ("ends", "pauses")) -> np.ndarray:
    """Chunks in which the agent decides whether to take or keep the floor: from a caller's turn
    end until `after_end_s` later ("ends"), through a caller's mid-turn pause ("pauses"), and from
    a caller's interruption, or an agent's false start over the caller (composition 3), until
    `after_end_s` after the agent stopped ("interruptions": the agent yields), from the sample's
    ground-truth events."""
    d = np.zeros(max(n, 0), bool)
    ev = meta.get("events", {})
    spans = [(t, t + after_end_s) for t in ev.get("callerEnds", [])] if "ends" in kinds else []
    spans += [tuple(p) for p in ev.get("pauses", [])] if "pauses" in kinds else []
    yields = ev.get("interruptions", []) + ev.get("falseStarts", [])
    spans += [(i["start"], i["agentStop"] + after_end_s) for i in yields] if "interruptions" in kinds else []
    for a, b in spans:
        d[max(0, int(a / chunk_s)):max(0, min(n, int(math.ceil(b / chunk_s))))] = True
    return d


def _batch(sources: list[tuple[Sequences, float]], rng, batch: int, seq_len: int, pad: int):
    import torch

    probs = np.array([p for _, p in sources], np.float64)
    probs /= probs.sum()
    ids = np.full((batch, seq_len + 1), pad, np.int64)
    weights = np.zeros((batch, seq_len + 1), np.float32)
    for b in range(batch):
        src = sources[int(rng.choice(len(sources), p=probs))][0]
        x, w = src.crop(rng, seq_len)
        ids[b, :len(x)] = x
        weights[b, :len(x)] = w
    ids_t = torch.from_numpy(ids)
    return ids_t[:, :-1], ids_t[:, 1:], torch.from_numpy(weights[:, 1:])


def _lr(step: int, steps: int, lr: float, warmup: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, steps - warmup))
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def save_hf(model, vocab: Vocab, out: Path, extra: dict | None = None) -> Path:
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp))
    (tmp / "duet_tokens.json").write_text(json.dumps(vocab.tokens_json(), indent=2) + "\n")
    if extra is not None:
        (tmp / "duet_recipe.json").write_text(json.dumps(extra, indent=2) + "\n")
    if out.exists():
        import shutil

        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def train_stage(data: Path, work: Path, *, stage: int, init: Path | None = None, steps: int = 1000,
                max_minutes: float | None = None, batch: int = 8, seq_len: int = 1024, lr: float = 2e-3,
                warmup: int = 50, chunk_ms: list[int] | None = None, seed: int = 0, threads: int = 2,
                layers: int = 4, hidden: int = 128, heads: int = 4, kv_heads: int = 2, intermediate: int = 384,
                max_context: int = 1024, checkpoint_minutes: float = 3.0, device: str = "cpu",
                dtype: str = "float32", decision_weight: float = 1.0, pause_weight: float | None = None,
                interruption_weight: float = 1.0, progress: bool = True) -> dict:
    """Trains one stage in `work` (resumable); returns a summary with the loss history's end.
    `decision_weight` multiplies the loss of the agent's tokens where it decides whether to take
    the floor (after a caller's turn end, during a caller's pause; stages 2 and 3); `pause_weight`,
    when given, replaces it in the caller's pauses (where the right decision is to stay quiet);
    `interruption_weight` multiplies it from a caller's interruption until after the agent stopped
    (where the right decision is to fall silent at once)."""
    import torch
    from tqdm import tqdm
    from transformers import LlamaForCausalLM

    torch.set_num_threads(max(1, threads))
    data, work = Path(data), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    chunk_ms = chunk_ms or [160]
    for ms in chunk_ms:
        if ms % 40 or not 40 <= ms <= 1000:
            raise DialogueRecipeError(f"--chunk-ms must be multiples of 40 (160, 200, 240), got {ms}")
    info = json.loads((data / "data.json").read_text())
    unit_count = int(info["tokenizer"]["unitCount"])
    vocab = Vocab.default(unit_count)
    if init is not None and (Path(init) / "duet_tokens.json").exists():
        # e.g. a Hugging Face text LLM extended by `duet-export extend-vocab --units K`: its ids
        t = json.loads((Path(init) / "duet_tokens.json").read_text())
        if int(t["unitCount"]) != unit_count:
            raise DialogueRecipeError(f"{init} has {t['unitCount']} unit tokens, the data's tokenizer {unit_count} "
                                      f"(extend the vocabulary with --units {unit_count})")
        vocab = Vocab(int(t["unitBase"]), unit_count, int(t["s0"]), int(t["s1"]), 0)
    settings = {"stage": stage, "steps": steps, "batch": batch, "seqLen": seq_len, "lr": lr, "warmup": warmup,
                "chunkMs": chunk_ms, "seed": seed, "init": str(init) if init else None,
                "userUnitWeight": USER_UNIT_WEIGHT, "decisionWeight": decision_weight, "pauseWeight": pause_weight,
                "interruptionWeight": interruption_weight,
                "device": device, "dtype": dtype, "data": data_identity(info, stage)}
    state_path = work / "state.pt"
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    if init is not None:
        model = LlamaForCausalLM.from_pretrained(str(init), attn_implementation="sdpa", dtype=torch_dtype)
        arch = json.loads((Path(init) / "config.json").read_text())
    else:
        cfg = model_config(vocab, layers=layers, hidden=hidden, heads=heads, kv_heads=kv_heads,
                           intermediate=intermediate, max_context=max_context)
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
        arch = cfg.to_dict()
    if vocab.vocab_size == 0:
        vocab = Vocab(vocab.unit_base, vocab.unit_count, vocab.s0, vocab.s1, model.config.vocab_size)
    if model.config.vocab_size != vocab.vocab_size:
        raise DialogueRecipeError(f"model vocabulary {model.config.vocab_size} != data's {vocab.vocab_size}")
    model.to(device)
    seq_len = min(seq_len, model.config.max_position_embeddings)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.01)
    step, elapsed, history = 0, 0.0, []
    rng = np.random.default_rng([seed, stage, 17])
    if state_path.exists():
        st = torch.load(state_path, weights_only=False)
        if st["settings"]["stage"] != stage:
            raise DialogueRecipeError(f"{work} holds stage {st['settings']['stage']}, not {stage}")
        if "data" in st["settings"] and st["settings"]["data"] != settings["data"]:
            # Resuming on other data would mix two corpora under one checkpoint without a trace.
            raise DialogueRecipeError(f"{work} holds stage {stage} trained on other dialogue data "
                                      f"({st['settings'].get('data')}, now {settings['data']}); use another --work")
        changed = [k for k in ("lr", "decisionWeight", "pauseWeight", "interruptionWeight")
                   if k in st["settings"] and st["settings"][k] != settings[k]]
        if changed:
            # Finished or half-done training under other weights is not this run's: say so, do not mix.
            raise DialogueRecipeError(f"{work} holds stage {stage} trained with other settings ("
                                      + ", ".join(f"{k} {st['settings'][k]}, now {settings[k]}" for k in changed)
                                      + "); use another --work or remove it")
        model.load_state_dict(st["model"])
        model.to(device)
        opt.load_state_dict(st["opt"])
        step, elapsed, history = st["step"], st["elapsed"], st["history"]
        rng.bit_generator.state = st["rng"]
        torch.set_rng_state(st["torch_rng"])
        _log(f"stage {stage}: resumed at step {step} ({elapsed / 60:.1f} min)")
    if stage == 1:
        sources = [(Sequences(data, 1, vocab, chunk_ms), 1.0)]
    elif stage == 2:
        sources = [(Sequences(data, 2, vocab, chunk_ms, decision_weight=decision_weight,
                              pause_weight=pause_weight, interruption_weight=interruption_weight), 1.0)]
    else:
        sources = [(Sequences(data, 3, vocab, chunk_ms, decision_weight=decision_weight,
                              pause_weight=pause_weight, interruption_weight=interruption_weight), 0.75),
                   (Sequences(data, 2, vocab, chunk_ms, decision_weight=decision_weight,
                              pause_weight=pause_weight, interruption_weight=interruption_weight), 0.25)]
    n_params = sum(p.numel() for p in model.parameters())
    _log(f"stage {stage}: {n_params / 1e6:.2f} M parameters, {sum(s.tokens for s, _ in sources) / 1e6:.2f} M "
         f"tokens of sequences, {steps} steps of {batch} x {seq_len}")

    def save():
        tmp = work / "state.pt.tmp"
        torch.save({"model": {k: v.cpu() for k, v in model.state_dict().items()}, "opt": opt.state_dict(), "step": step, "elapsed": elapsed,
                    "history": history, "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                    "settings": settings, "arch": arch}, tmp)
        os.replace(tmp, state_path)

    model.train()
    bar = tqdm(total=steps, initial=step, desc=f"stage {stage}", unit="step", file=sys.stderr, disable=not progress)
    t_start = time.time() - elapsed
    last_ckpt = time.time()
    smooth = None
    with open(work / "loss.log", "a") as log:
        while step < steps:
            if max_minutes is not None and (time.time() - t_start) / 60 >= max_minutes:
                _log(f"stage {stage}: time budget of {max_minutes} min reached at step {step}")
                break
            x, y, w = (t.to(device) for t in _batch(sources, rng, batch, seq_len, vocab.s0))
            # progress = the larger of the step and the time fraction, so that a time budget still
            # ends with the learning rate decayed
            frac_steps = step
            if max_minutes:
                frac_steps = max(step, int(steps * (time.time() - t_start) / 60 / max_minutes))
            for g in opt.param_groups:
                g["lr"] = _lr(frac_steps, steps, lr, warmup) if step >= warmup else _lr(step, steps, lr, warmup)
            logits = model(input_ids=x).logits
            ce = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1),
                                                   reduction="none")
            loss = (ce * w.reshape(-1)).sum() / w.sum().clamp_min(1.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            lv = loss.item()
            smooth = lv if smooth is None else 0.98 * smooth + 0.02 * lv
            elapsed = time.time() - t_start
            if step % 10 == 0 or step == steps:
                history.append([step, round(lv, 4), round(smooth, 4), round(elapsed, 1)])
                log.write(json.dumps({"step": step, "loss": round(lv, 4), "smooth": round(smooth, 4),
                                      "lr": round(opt.param_groups[0]["lr"], 6), "seconds": round(elapsed, 1)}) + "\n")
                log.flush()
            bar.set_postfix(loss=f"{smooth:.3f}")
            bar.update()
            if time.time() - last_ckpt > checkpoint_minutes * 60:
                save()
                last_ckpt = time.time()
    bar.close()
    save()
    summary = {"stage": stage, "steps": step, "minutes": round(elapsed / 60, 2), "parameters": n_params,
               "finalLoss": history[-1][2] if history else None, "sequenceTokens": sum(s.tokens for s, _ in sources),
               "settings": settings}
    model.eval()
    save_hf(model.to("cpu"), vocab, work / "final", {"recipe": RECIPE, **summary})
    return summary


def heldout_loss(checkpoint: Path, data: Path, stage: int, *, chunk_ms: int = 160, seq_len: int = 1024,
                 limit: int = 12) -> dict:
    """Mean weighted next-token loss on held-out dialogues (agent side / all)."""
    import torch
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(str(checkpoint), attn_implementation="sdpa").eval()
    info = json.loads((Path(data) / "data.json").read_text())
    vocab = Vocab.default(int(info["tokenizer"]["unitCount"]))
    tot, n, tot_a, n_a = 0.0, 0, 0.0, 0
    for _m, agent, user in load_stage(data, stage, "heldout")[:limit]:
        toks, _c, side = interleave(agent, user, chunk_ms // 40, vocab, with_chunks=True)
        toks = torch.tensor(toks[: seq_len + 1])[None]
        side = torch.tensor(side[1: seq_len + 1])
        with torch.no_grad():
            logits = model(input_ids=toks[:, :-1]).logits[0]
        ce = torch.nn.functional.cross_entropy(logits, toks[0, 1:], reduction="none")
        tot += float(ce.sum())
        n += ce.numel()
        tot_a += float(ce[side].sum())
        n_a += int(side.sum())
    return {"loss": round(tot / max(1, n), 4), "agentLoss": round(tot_a / max(1, n_a), 4), "tokens": n}


def export_dialogue(checkpoint: Path, out: Path, recipe: dict | None = None, progress: bool = True) -> dict:
    """tools/export's `llama` exporter + the recipe settings in the manifest."""
    from duet_export.export import export_llama

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = export_llama(Path(checkpoint), out, {}, external="never", progress=progress)
    manifest = json.loads(path.read_text())
    if recipe is not None:
        manifest["recipe"] = recipe
    manifest["source"]["checkpoint"] = _display(Path(checkpoint))
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, path)
    return manifest


def _display(path: Path) -> str:
    repo = Path(__file__).resolve().parents[3]
    try:
        return str(path.resolve().relative_to(repo))
    except ValueError:
        return str(path)
