"""Text dialogues for the dialogue recipe: a seeded generator shipped with the project and a
loader for a local text dialogue dataset.

A dialogue is `{"id": str, "topic": str, "turns": [{"speaker": "caller" | "agent", "text": str}]}`
with the speakers alternating (consecutive turns of one speaker are merged by the loader).
The generator draws a topic, who opens the call, 6..14 turns, and per turn one to four
sentences from per-topic templates filled from `sentences.py`'s word lists; agent turns are
answers / statements, caller turns requests / questions / stories. The words are plausible,
not meaningful: the recipe only needs varied speech with realistic turn lengths.

Accepted local formats (`load_dialogues`, `--dialogues FILE`):
- JSONL, one dialogue per line, any of
  `{"turns": ["text", "text", ...]}` (alternating, the first speaker is the caller),
  `{"turns": [{"speaker": "A"|"B"|"caller"|"agent"|..., "text": "..."}, ...]}` (the first speaker
  seen is the caller unless a speaker is literally "agent"/"caller"),
  `{"dialog": [...]}` / `{"dialogue": [...]}` / `{"utterances": [...]}` (same shapes, as in
  DailyDialog/SODA-style exports), or a bare JSON list of strings;
- plain text (.txt): dialogues separated by blank lines, one turn per line, optionally
  `Speaker: text` (the speaker names decide who is who; without names turns alternate).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .sentences import (ADJECTIVES, ADVERBS, CITIES, MONTHS, NAMES, NOUNS, PLACES, TOPICS, VERBS_BASE, VERBS_PAST,
                        WEEKDAYS, _noun_phrase, _number, _pick, _time, number_words)


class DialogueError(ValueError):
    pass


FOODS = ["pizza", "noodle soup", "chicken curry", "vegetable lasagne", "fish and chips", "green salad",
         "cheeseburger", "mushroom risotto", "tomato pasta", "apple pie", "pancakes", "sushi"]
DEVICES = ["laptop", "router", "phone", "printer", "television", "tablet", "smart watch", "speaker", "camera"]
SYMPTOMS = ["a headache", "a sore throat", "a cough", "back pain", "a fever", "trouble sleeping", "an earache"]
HOBBIES = ["painting", "running", "chess", "gardening", "cooking", "photography", "cycling", "singing",
           "knitting", "fishing", "climbing", "reading"]
WEATHER = ["sunny", "rainy", "windy", "cloudy", "foggy", "snowy", "stormy", "warm", "freezing"]
ITEMS = NOUNS + FOODS + DEVICES

# Per topic: caller lines and agent lines (templates over a generator `r`). {…} fields are filled
# with the helpers below.


def _c(r, *xs):
    return _pick(r, xs)


TOPIC_LINES: dict[str, dict[str, list]] = {
    "restaurant": {
        "caller": [
            lambda r: f"I'd like to book a table for {number_words(int(r.integers(2, 9)))} on {_pick(r, WEEKDAYS)}.",
            lambda r: f"Do you have any {_c(r, 'vegetarian', 'vegan', 'gluten free', 'spicy')} dishes?",
            lambda r: f"Could we sit near the window, please?",
            lambda r: f"How much is the {_pick(r, FOODS)}?",
            lambda r: f"Actually, make that {_time(r)} instead.",
        ],
        "agent": [
            lambda r: f"Of course, we have a table free at {_time(r)}.",
            lambda r: f"Our special today is the {_pick(r, FOODS)} with a {_pick(r, ADJECTIVES)} sauce.",
            lambda r: f"The {_pick(r, FOODS)} costs {_number(r)} dollars.",
            lambda r: f"Can I have a name for the booking?",
            lambda r: f"Yes, we have a {_pick(r, FOODS)} that many guests enjoy.",
        ],
    },
    "travel": {
        "caller": [
            lambda r: f"When is the next train to {_pick(r, CITIES)}?",
            lambda r: f"I need a return ticket to {_pick(r, CITIES)} for {_pick(r, WEEKDAYS)}.",
            lambda r: f"Is there a direct flight, or do I have to change in {_pick(r, CITIES)}?",
            lambda r: f"How long does the journey take?",
            lambda r: f"Can I bring my {_pick(r, ['bicycle', 'dog', 'guitar', 'big suitcase'])} on board?",
        ],
        "agent": [
            lambda r: f"The next one leaves at {_time(r)} from platform {_number(r)}.",
            lambda r: f"It takes about {number_words(int(r.integers(2, 12)))} hours with one change.",
            lambda r: f"A return ticket costs {_number(r)} dollars.",
            lambda r: f"Yes, but you need to reserve a space before {_pick(r, WEEKDAYS)}.",
            lambda r: f"Would you prefer a window seat or an aisle seat?",
        ],
    },
    "tech-support": {
        "caller": [
            lambda r: f"My {_pick(r, DEVICES)} stopped working {_pick(r, ADVERBS)}.",
            lambda r: f"I tried turning it off and on again, but nothing happened.",
            lambda r: f"The light on the {_pick(r, DEVICES)} keeps blinking {_pick(r, ['red', 'orange', 'blue'])}.",
            lambda r: f"Should I {_pick(r, VERBS_BASE)} the cable?",
            lambda r: f"It says error {_number(r)} on the screen.",
        ],
        "agent": [
            lambda r: f"Let's check the settings together.",
            lambda r: f"Please unplug the {_pick(r, DEVICES)} and wait {number_words(int(r.integers(10, 60)))} seconds.",
            lambda r: f"Can you tell me the model number on the back?",
            lambda r: f"That error usually means the update did not finish.",
            lambda r: f"I will send a technician on {_pick(r, WEEKDAYS)} morning.",
        ],
    },
    "doctor": {
        "caller": [
            lambda r: f"I've had {_pick(r, SYMPTOMS)} since {_pick(r, WEEKDAYS)}.",
            lambda r: f"Can I see the doctor {_pick(r, ['today', 'tomorrow', 'this week'])}?",
            lambda r: f"It gets worse in the {_pick(r, ['morning', 'evening', 'night'])}.",
            lambda r: f"Should I keep taking the {_pick(r, ['tablets', 'syrup', 'drops'])}?",
        ],
        "agent": [
            lambda r: f"We have an appointment at {_time(r)} on {_pick(r, WEEKDAYS)}.",
            lambda r: f"Do you have a temperature?",
            lambda r: f"Drink plenty of water and rest for a few days.",
            lambda r: f"The doctor will call you back {_pick(r, ADVERBS)}.",
        ],
    },
    "weather": {
        "caller": [
            lambda r: f"What's the weather like in {_pick(r, CITIES)} {_pick(r, ['today', 'tomorrow', 'at the weekend'])}?",
            lambda r: f"Do I need an umbrella on {_pick(r, WEEKDAYS)}?",
            lambda r: f"It was so {_pick(r, WEATHER)} here yesterday.",
        ],
        "agent": [
            lambda r: f"It will be {_pick(r, WEATHER)} with a high of {number_words(int(r.integers(0, 35)))} degrees.",
            lambda r: f"Expect some {_pick(r, ['rain', 'snow', 'wind', 'sunshine'])} in the afternoon.",
            lambda r: f"The weekend looks {_pick(r, WEATHER)} in {_pick(r, CITIES)}.",
        ],
    },
    "shopping": {
        "caller": [
            lambda r: f"I ordered {_noun_phrase(r)} last week and it hasn't arrived.",
            lambda r: f"Can I return {_noun_phrase(r)} if it doesn't fit?",
            lambda r: f"Do you have the {_pick(r, ADJECTIVES)} one in stock?",
            lambda r: f"My order number is {' '.join(str(int(d)) for d in r.integers(0, 10, size=6))}.",
        ],
        "agent": [
            lambda r: f"Your parcel is at {_pick(r, PLACES)} and arrives on {_pick(r, WEEKDAYS)}.",
            lambda r: f"Returns are free within {number_words(int(r.integers(14, 60)))} days.",
            lambda r: f"I'm afraid that one is sold out until {_pick(r, MONTHS)}.",
            lambda r: f"Could you give me your order number, please?",
        ],
    },
    "hobbies": {
        "caller": [
            lambda r: f"I started {_pick(r, HOBBIES)} {_pick(r, ['last year', 'in the spring', 'recently'])}.",
            lambda r: f"Have you ever tried {_pick(r, HOBBIES)}?",
            lambda r: f"My friend {_pick(r, NAMES)} says {_pick(r, HOBBIES)} is {_pick(r, ADJECTIVES)}.",
        ],
        "agent": [
            lambda r: f"I love {_pick(r, HOBBIES)}, especially at the weekend.",
            lambda r: f"That sounds {_pick(r, ADJECTIVES)}. How often do you go?",
            lambda r: f"You should try {_pick(r, HOBBIES)} at {_pick(r, PLACES)}.",
        ],
    },
    "bank": {
        "caller": [
            lambda r: f"I think someone used my card in {_pick(r, CITIES)}.",
            lambda r: f"Can you check my balance, please?",
            lambda r: f"I want to send {_number(r)} dollars to {_pick(r, NAMES)}.",
        ],
        "agent": [
            lambda r: f"I've blocked the card, and a new one arrives on {_pick(r, WEEKDAYS)}.",
            lambda r: f"Your balance is {_number(r)} dollars and {int(r.integers(1, 99))} cents.",
            lambda r: f"For security, can you confirm your date of birth?",
        ],
    },
    "small-talk": {
        "caller": [
            lambda r: f"Did you hear about {_pick(r, TOPICS)}?",
            lambda r: f"{_pick(r, NAMES)} {_pick(r, VERBS_PAST)} {_noun_phrase(r)} {_pick(r, ADVERBS)}.",
            lambda r: f"I think {_pick(r, TOPICS)} was {_pick(r, ADJECTIVES)}.",
            lambda r: f"We went to {_pick(r, PLACES)} and it was {_pick(r, ADJECTIVES)}.",
        ],
        "agent": [
            lambda r: f"Really? I thought {_pick(r, TOPICS)} was {_pick(r, ADJECTIVES)}.",
            lambda r: f"Oh, I missed that. What happened?",
            lambda r: f"{_pick(r, NAMES)} told me the same thing {_pick(r, ADVERBS)}.",
            lambda r: f"That reminds me of {_pick(r, TOPICS)}.",
        ],
    },
    "delivery": {
        "caller": [
            lambda r: f"Can you deliver {_noun_phrase(r)} to {_pick(r, PLACES)}?",
            lambda r: f"I won't be home until {_time(r)}.",
            lambda r: f"Please leave it with {_pick(r, NAMES)} next door.",
        ],
        "agent": [
            lambda r: f"The driver will arrive between {_time(r)} and {_time(r)}.",
            lambda r: f"Delivery costs {_number(r)} dollars for that area.",
            lambda r: f"Should I leave it at the front door?",
        ],
    },
    "school": {
        "caller": [
            lambda r: f"My son missed the {_pick(r, ['maths', 'history', 'music', 'science'])} class on {_pick(r, WEEKDAYS)}.",
            lambda r: f"When is the parents' evening?",
            lambda r: f"Does {_pick(r, NAMES)} need to bring {_noun_phrase(r)}?",
        ],
        "agent": [
            lambda r: f"The parents' evening is on the {int(r.integers(1, 29))}th of {_pick(r, MONTHS)}.",
            lambda r: f"The teacher will send the homework by email.",
            lambda r: f"Yes, and please label it with his name.",
        ],
    },
    "housing": {
        "caller": [
            lambda r: f"The heater in my flat is {_pick(r, ['broken', 'making a noise', 'leaking'])}.",
            lambda r: f"Is the flat near {_pick(r, PLACES)} still available?",
            lambda r: f"How much is the rent per month?",
        ],
        "agent": [
            lambda r: f"The rent is {_number(r)} dollars per month, bills included.",
            lambda r: f"A plumber can come on {_pick(r, WEEKDAYS)} at {_time(r)}.",
            lambda r: f"Would you like to see it {_pick(r, ADVERBS)}?",
        ],
    },
}
TOPIC_NAMES = sorted(TOPIC_LINES)

OPENINGS = {
    "caller": ["Hello?", "Hi there.", "Hello, is this {place}?", "Good morning.", "Hi, it's {name} here.",
               "Hello, can you hear me?", "Hey, how are you?"],
    "agent": ["Hello, how can I help you?", "Good afternoon, you're speaking with {name}.",
              "Hi, thanks for calling.", "Hello, this is {place}, what can I do for you?", "Hi, go ahead."],
}
CLOSINGS = {
    "caller": ["Thanks, that's all.", "Great, thank you so much.", "Okay, bye for now.", "Perfect, goodbye."],
    "agent": ["You're welcome, have a nice day.", "Thanks for calling, goodbye.", "Glad I could help. Bye."],
}
ACKS = ["Okay.", "Right.", "Sure.", "I see.", "Alright.", "Great.", "Oh, really?", "Yes.", "No problem.",
        "Hmm, okay.", "Got it.", "Oh no."]


def _fill(r, s: str) -> str:
    return s.replace("{name}", _pick(r, NAMES[:26])).replace("{place}", _pick(r, PLACES))


def _turn(r, topic: str, speaker: str, long: bool) -> str:
    lines = TOPIC_LINES[topic][speaker]
    other = TOPIC_LINES[_pick(r, TOPIC_NAMES)][speaker]
    n = int(r.integers(3, 5)) if long else int(r.choice([1, 1, 1, 2, 2, 3]))
    out = []
    if r.random() < 0.3:
        out.append(_pick(r, ACKS))
    for _ in range(n):
        pool = lines if r.random() < 0.8 else other
        out.append(_pick(r, pool)(r))
    return " ".join(out)


def generate_dialogue(seed: int, i: int) -> dict:
    """Dialogue i of the seeded generator (deterministic in (seed, i))."""
    r = np.random.default_rng([seed, i, 7])
    topic = _pick(r, TOPIC_NAMES)
    first = "caller" if r.random() < 0.6 else "agent"
    n = int(r.integers(6, 13))
    turns = []
    speaker = first
    for k in range(n):
        if k == 0:
            text = _fill(r, _pick(r, OPENINGS[speaker]))
        elif k == n - 1:
            text = _pick(r, CLOSINGS[speaker])
        else:
            text = _turn(r, topic, speaker, long=r.random() < 0.3)
        turns.append({"speaker": speaker, "text": text})
        speaker = "agent" if speaker == "caller" else "caller"
    return {"id": f"gen-{seed}-{i:06d}", "topic": topic, "turns": turns}


def generate_dialogues(n: int, seed: int) -> list[dict]:
    return [generate_dialogue(seed, i) for i in range(n)]


# ---------------------------------------------------------------- local datasets

_SPEAKER_LINE = re.compile(r"^\s*([A-Za-z][\w .'-]{0,30}?)\s*:\s*(.+)$")


def _normalise(turns: list, ident: str) -> dict:
    """[(speaker_name|None, text)] -> dialogue with caller/agent roles, merged runs."""
    names: list[str] = []
    out: list[dict] = []
    for k, (name, text) in enumerate(turns):
        text = " ".join(str(text).split())
        if not text:
            continue
        if name is None:
            role = "caller" if k % 2 == 0 else "agent"
        else:
            low = str(name).strip().lower()
            if low in ("caller", "user", "human", "customer"):
                role = "caller"
            elif low in ("agent", "assistant", "system", "bot", "operator"):
                role = "agent"
            else:
                if low not in names:
                    names.append(low)
                role = "caller" if names.index(low) % 2 == 0 else "agent"
        if out and out[-1]["speaker"] == role:
            out[-1]["text"] += " " + text
        else:
            out.append({"speaker": role, "text": text})
    if len(out) < 2:
        raise DialogueError(f"dialogue {ident} has fewer than two turns")
    return {"id": ident, "topic": "local", "turns": out}


def _from_obj(obj, ident: str) -> dict:
    if isinstance(obj, dict):
        for key in ("turns", "dialog", "dialogue", "utterances", "conversation"):
            if key in obj:
                obj = obj[key]
                break
        else:
            raise DialogueError(f"dialogue {ident}: no turns/dialog/dialogue/utterances key")
    if not isinstance(obj, list):
        raise DialogueError(f"dialogue {ident}: turns must be a list")
    turns = []
    for t in obj:
        if isinstance(t, str):
            turns.append((None, t))
        elif isinstance(t, dict):
            text = t.get("text", t.get("utterance", t.get("value", t.get("content"))))
            name = t.get("speaker", t.get("role", t.get("from")))
            if text is None:
                raise DialogueError(f"dialogue {ident}: a turn has no text")
            turns.append((name, text))
        else:
            raise DialogueError(f"dialogue {ident}: a turn must be a string or an object")
    return _normalise(turns, ident)


def load_dialogues(path: Path, limit: int | None = None) -> list[dict]:
    """Reads a local text dialogue dataset (formats in the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise DialogueError(f"{path} does not exist")
    out: list[dict] = []
    text = path.read_text(encoding="utf-8")
    stem = path.stem
    if path.suffix in (".jsonl", ".json"):
        lines = [text] if path.suffix == ".json" else text.splitlines()
        for n, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DialogueError(f"{path}:{n + 1}: not JSON ({e})") from e
            items = obj if path.suffix == ".json" and isinstance(obj, list) and obj and not isinstance(obj[0], str) \
                else [obj]
            for m, it in enumerate(items):
                out.append(_from_obj(it, f"{stem}-{len(out):06d}"))
                if limit and len(out) >= limit:
                    return out
    else:
        for block in re.split(r"\n\s*\n", text):
            lines = [x for x in block.splitlines() if x.strip()]
            if not lines:
                continue
            turns = []
            for line in lines:
                m = _SPEAKER_LINE.match(line)
                turns.append((m.group(1), m.group(2)) if m else (None, line))
            out.append(_normalise(turns, f"{stem}-{len(out):06d}"))
            if limit and len(out) >= limit:
                return out
    if not out:
        raise DialogueError(f"{path} holds no dialogues")
    return out
