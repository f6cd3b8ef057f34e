"""A seeded generator of varied English sentences for the synthetic speech corpus.

Templates over small word lists: statements, questions, requests, numbers, times, dates,
short dialogue turns and backchannels, so that the corpus covers most English phones in many
contexts and prosodies (questions, exclamations, lists). Deterministic for a given
`numpy.random.Generator` state; nothing is downloaded.
"""

from __future__ import annotations

import numpy as np

NAMES = ["Anna", "Ben", "Carlos", "Diana", "Ethan", "Fatima", "George", "Hannah", "Ivan", "Julia", "Kenji",
         "Laura", "Mohammed", "Nora", "Oliver", "Priya", "Quentin", "Rosa", "Samuel", "Tara", "Umar",
         "Violet", "William", "Xavier", "Yasmin", "Zoe", "my brother", "our neighbour", "the doctor",
         "the teacher", "your manager", "the driver"]
PLACES = ["the station", "the market", "the office", "the library", "the park", "the beach", "the airport",
          "the hospital", "the kitchen", "the garden", "the museum", "the bakery", "the river", "the hotel",
          "the north gate", "the old bridge", "the school", "the pharmacy", "the harbour", "the village"]
CITIES = ["London", "Boston", "Sydney", "Toronto", "Dublin", "Chicago", "Edinburgh", "Seattle", "Denver",
          "Manchester", "Auckland", "Austin", "Glasgow", "Phoenix", "Vancouver", "Bristol"]
NOUNS = ["book", "ticket", "phone", "umbrella", "letter", "package", "bicycle", "recipe", "window", "jacket",
         "camera", "message", "invoice", "guitar", "sandwich", "map", "key", "chair", "report", "basket",
         "blanket", "bottle", "engine", "picture", "question", "answer", "meeting", "appointment", "holiday",
         "weather", "problem", "computer", "printer", "garden hose", "coffee", "orange juice", "vegetable soup"]
ADJECTIVES = ["red", "quiet", "heavy", "bright", "broken", "cheap", "expensive", "strange", "lovely", "huge",
              "tiny", "yellow", "warm", "cold", "noisy", "careful", "lucky", "busy", "smooth", "rough",
              "delicious", "terrible", "wonderful", "simple", "modern", "ancient", "purple", "shiny"]
VERBS_PAST = ["found", "lost", "bought", "fixed", "painted", "opened", "carried", "borrowed", "sold", "washed",
              "checked", "ordered", "dropped", "forgot", "delivered", "cleaned", "measured", "returned"]
VERBS_BASE = ["bring", "call", "send", "check", "book", "cancel", "move", "find", "order", "explain", "repeat",
              "change", "finish", "visit", "watch", "choose", "describe", "remember", "confirm", "share"]
ADVERBS = ["quickly", "slowly", "carefully", "yesterday", "this morning", "last week", "again", "tonight",
           "before lunch", "after work", "right away", "on Thursday", "next month", "at the weekend"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
TOPICS = ["the football match", "the election", "the new film", "the price of petrol", "the rain",
          "the concert", "the quarterly results", "the train strike", "the holiday plans", "the birthday party",
          "the broken heater", "the job interview", "the science fair", "the chess tournament"]
INTERJECTIONS = ["Oh", "Well", "Right", "Okay", "Hmm", "Yes", "No", "Sure", "Actually", "Honestly", "Wow",
                 "Alright", "Look", "So"]
BACKCHANNELS = ["Yeah.", "Uh huh.", "Mm hmm.", "Right.", "Okay.", "I see.", "Really?", "Oh wow.", "Sure.",
                "Exactly.", "Got it.", "No way!", "Of course.", "Hmm, interesting.", "Thank you.", "Sorry?"]

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_words(n: int) -> str:
    """0..999 in words (espeak reads digits too; words vary the text side)."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else "-" + ONES[n % 10])
    rest = n % 100
    return ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + number_words(rest))


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def _plural(noun: str) -> str:
    if noun.endswith(("ch", "sh", "s", "x")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _number(rng) -> str:
    n = int(rng.integers(0, 1000))
    return number_words(n) if rng.random() < 0.5 else str(n)


def _time(rng) -> str:
    h, m = int(rng.integers(1, 13)), int(rng.choice([0, 5, 10, 15, 20, 30, 40, 45, 50]))
    if rng.random() < 0.5:
        return f"{h}:{m:02d}"
    return number_words(h) + " " + ("o'clock" if m == 0 else number_words(m))


def _noun_phrase(rng) -> str:
    noun = _pick(rng, NOUNS)
    if rng.random() < 0.6:
        noun = f"{_pick(rng, ADJECTIVES)} {noun}"
    return f"{_pick(rng, ['the', 'a', 'my', 'your', 'that', 'this'])} {noun}".replace(" a a", " an a").replace(
        "a e", "an e").replace("a i", "an i").replace("a o", "an o").replace("a u", "an u")


TEMPLATES = [
    lambda r: f"{_pick(r, NAMES)} {_pick(r, VERBS_PAST)} {_noun_phrase(r)} near {_pick(r, PLACES)} {_pick(r, ADVERBS)}.",
    lambda r: f"Could you {_pick(r, VERBS_BASE)} {_noun_phrase(r)} for {_pick(r, NAMES)}, please?",
    lambda r: f"Did {_pick(r, NAMES)} really {_pick(r, VERBS_BASE)} {_noun_phrase(r)}?",
    lambda r: f"I think {_pick(r, TOPICS)} was {_pick(r, ADJECTIVES)}, but nobody agrees with me.",
    lambda r: f"The train to {_pick(r, CITIES)} leaves at {_time(r)} from platform {_number(r)}.",
    lambda r: f"{_pick(r, INTERJECTIONS)}, I wasn't expecting {_noun_phrase(r)} to be so {_pick(r, ADJECTIVES)}.",
    lambda r: f"We need {_number(r)} {_plural(_pick(r, NOUNS))} before {_pick(r, WEEKDAYS)}.",
    lambda r: f"My appointment is on {_pick(r, WEEKDAYS)} the {int(r.integers(1, 29))}th of {_pick(r, MONTHS)}.",
    lambda r: f"What do you think about {_pick(r, TOPICS)}?",
    lambda r: f"Please {_pick(r, VERBS_BASE)} {_noun_phrase(r)} and then {_pick(r, VERBS_BASE)} {_noun_phrase(r)}.",
    lambda r: f"{_pick(r, NAMES)} and {_pick(r, NAMES)} moved to {_pick(r, CITIES)} {_pick(r, ADVERBS)}.",
    lambda r: f"It costs {_number(r)} dollars and {int(r.integers(1, 99))} cents, which is rather {_pick(r, ADJECTIVES)}.",
    lambda r: f"{_pick(r, BACKCHANNELS)}",
    lambda r: f"{_pick(r, BACKCHANNELS)} {_pick(r, INTERJECTIONS)}, tell me more about {_pick(r, TOPICS)}.",
    lambda r: f"Where did you put {_noun_phrase(r)}? I looked in {_pick(r, PLACES)} and it wasn't there.",
    lambda r: f"If it rains on {_pick(r, WEEKDAYS)}, we will stay home and {_pick(r, VERBS_BASE)} {_noun_phrase(r)}.",
    lambda r: f"The {_pick(r, ADJECTIVES)} {_pick(r, NOUNS)} is {_number(r)} metres from {_pick(r, PLACES)}.",
    lambda r: f"Sorry, could you repeat that? I didn't catch the part about {_noun_phrase(r)}.",
    lambda r: f"Call me at {' '.join(str(int(d)) for d in r.integers(0, 10, size=7))} after {_time(r)}.",
    lambda r: f"Honestly, {_pick(r, TOPICS)} made {_pick(r, NAMES)} {_pick(r, ['laugh', 'cry', 'shout', 'think', 'smile'])}.",
    lambda r: f"First {_pick(r, VERBS_BASE)} the {_pick(r, NOUNS)}, second {_pick(r, VERBS_BASE)} the "
              f"{_pick(r, NOUNS)}, and finally {_pick(r, VERBS_BASE)} the {_pick(r, NOUNS)}.",
    lambda r: f"Is it true that {_pick(r, NAMES)} {_pick(r, VERBS_PAST)} {_noun_phrase(r)} in {_pick(r, CITIES)}?",
    lambda r: f"Yes, absolutely! {_pick(r, NAMES)} will {_pick(r, VERBS_BASE)} it {_pick(r, ADVERBS)}.",
    lambda r: f"No, that's not what I meant. I wanted {_noun_phrase(r)}, not {_noun_phrase(r)}.",
]


def sentence(rng: np.random.Generator) -> str:
    """One sentence; about one in four is two sentences joined (longer utterances)."""
    s = _pick(rng, TEMPLATES)(rng)
    if rng.random() < 0.25:
        s = f"{s} {_pick(rng, TEMPLATES)(rng)}"
    return s[0].upper() + s[1:]
