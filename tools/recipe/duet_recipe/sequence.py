"""The SyncLLM token sequence, exactly as packages/sync writes it and the engine feeds it.

Vocabulary (the default dialogue model): unit u is token `unitBase + u` (0..unitCount-1),
`[S0]` = unitCount, `[S1]` = unitCount + 1, vocabSize = unitCount + 2 (the layout of the engine's
untrained model and of `duet-export tiny`'s default).

Chunk j (U = chunkMs / 40 units per speaker) is `[S0] <agent units of chunk j> [S1] <user units
of chunk j>`, each speaker's units deduplicated against its previous unit (also across chunk
boundaries: `dedupChunk`), `[S1]` omitted when the user has nothing new. As in
`CallTimeline`, the agent's chunk 0 is always empty (the model starts speaking at chunk 1), so
a sequence starts `[S0] [S1] <user units of chunk 0> [S0] <agent units of chunk 1> ...`.
A sequence cut anywhere is a valid engine history prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Vocab:
    unit_base: int
    unit_count: int
    s0: int
    s1: int
    vocab_size: int

    @staticmethod
    def default(unit_count: int) -> "Vocab":
        return Vocab(0, unit_count, unit_count, unit_count + 1, unit_count + 2)

    @staticmethod
    def of_checkpoint(checkpoint, vocab_size: int) -> "Vocab":
        """The ids a trained checkpoint's `duet_tokens.json` names (its model's vocabulary size)."""
        import json
        from pathlib import Path

        t = json.loads((Path(checkpoint) / "duet_tokens.json").read_text())
        return Vocab(int(t["unitBase"]), int(t["unitCount"]), int(t["s0"]), int(t["s1"]), vocab_size)

    def tokens_json(self) -> dict:
        return {"unitBase": self.unit_base, "unitCount": self.unit_count, "s0": self.s0, "s1": self.s1}


def dedup_chunk(units, previous):
    out = []
    last = previous
    for u in units:
        u = int(u)
        if u != last:
            out.append(u)
            last = u
    return out


def interleave(agent: np.ndarray, user: np.ndarray, units_per_chunk: int, vocab: Vocab,
               with_chunks: bool = False):
    """Token sequence of a call from both channels' raw 25 Hz units (equal length, cut to whole chunks).

    With `with_chunks` also returns, per token, the chunk index it belongs to and whether it is
    an agent-side token ([S0] or an agent unit)."""
    u = units_per_chunk
    n = min(len(agent), len(user)) // u
    tokens: list[int] = []
    chunk_of: list[int] = []
    agent_side: list[bool] = []
    prev_a = None
    prev_u = None
    for j in range(n):
        a = [] if j == 0 else dedup_chunk(agent[j * u:(j + 1) * u], prev_a)
        if a:
            prev_a = a[-1]
        tokens.append(vocab.s0)
        tokens.extend(vocab.unit_base + x for x in a)
        chunk_of.extend([j] * (1 + len(a)))
        agent_side.extend([True] * (1 + len(a)))
        us = dedup_chunk(user[j * u:(j + 1) * u], prev_u)
        if us:
            prev_u = us[-1]
            tokens.append(vocab.s1)
            tokens.extend(vocab.unit_base + x for x in us)
            chunk_of.extend([j] * (1 + len(us)))
            agent_side.extend([False] * (1 + len(us)))
    if with_chunks:
        return tokens, chunk_of, agent_side
    return tokens


def turn_based(turn_units: list[tuple[str, np.ndarray]], vocab: Vocab) -> list[int]:
    """Stage 1 (turn-based, as in the paper's first stage, speech only): each turn is its tag
    ([S0] for the agent, [S1] for the caller) and the turn's deduplicated units, no clock."""
    tokens: list[int] = []
    for speaker, units in turn_units:
        d = dedup_chunk(units, None)
        if not d:
            continue
        tokens.append(vocab.s0 if speaker == "agent" else vocab.s1)
        tokens.extend(vocab.unit_base + x for x in d)
    return tokens


def expand_agent(tokens: list[int], vocab: Vocab, units_per_chunk: int, fill_unit: int) -> list[int]:
    """The agent's unit per 40 ms slot from a token sequence (packages/sync `expandChunk` per
    chunk: units repeated evenly over the U slots, an empty chunk holds the previous unit)."""
    slots: list[int] = []
    prev = None
    chunks: list[list[int]] = []
    in_agent = False
    for t in tokens:
        if t == vocab.s0:
            chunks.append([])
            in_agent = True
        elif t == vocab.s1:
            in_agent = False
        elif in_agent and chunks:
            chunks[-1].append(t - vocab.unit_base)
    u = units_per_chunk
    for c in chunks:
        n = len(c)
        if n == 0:
            slots.extend([prev if prev is not None else fill_unit] * u)
            continue
        out = [0] * u
        for i, x in enumerate(c):
            for s in range(i * u // n, (i + 1) * u // n):
                out[s] = x
        slots.extend(out)
        prev = c[-1]
    return slots
