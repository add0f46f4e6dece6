"""Deterministic benchmark text: varied English sentences of 8-30 words, and chat prompts
built from them. No data sets; the same seed always gives the same list."""

from __future__ import annotations

import random

SUBJECTS = [
    "the old lighthouse keeper", "a young software engineer", "my neighbour's grey cat",
    "the city council", "a small team of volunteers", "the history teacher",
    "an experienced mountain guide", "the night train to the coast", "our research group",
    "a curious child", "the local bakery", "the orchestra", "a retired pilot",
    "the new library", "a group of students", "the river", "the weather service",
    "a famous chef", "the farmer down the road", "the museum curator",
]
VERBS = [
    "carefully repaired", "quietly explained", "built", "painted", "described",
    "measured", "planned", "photographed", "studied", "celebrated", "questioned",
    "rebuilt", "cleaned", "organised", "translated", "discovered", "watched",
    "tested", "recorded", "visited",
]
OBJECTS = [
    "the broken wooden bridge", "a detailed map of the valley", "the annual budget",
    "several rare birds", "an ancient stone wall", "the results of the experiment",
    "a long letter from abroad", "the garden behind the station", "the old printing press",
    "a simple recipe for bread", "the noisy engine", "the northern hiking trail",
    "a collection of postcards", "the damaged roof", "the first chapter of the novel",
    "a new way to store energy", "the school timetable", "the harbour at dawn",
]
PLACES = [
    "near the harbour", "in the early morning", "after the storm", "before the festival",
    "during the long winter", "at the edge of town", "on a rainy afternoon",
    "under the bright summer sun", "in front of a large crowd", "without any help",
    "for the third time this year", "despite the strong wind",
]
TAILS = [
    "because nobody else knew how to do it",
    "while the rest of the village was still asleep",
    "and everyone agreed that it had been worth the effort",
    "although the instructions were confusing and incomplete",
    "so that future visitors would understand its story",
    "even though the budget was smaller than expected",
    "and then wrote a short report about what had happened",
    "which surprised almost everybody who had followed the project",
]
OPENERS = ["", "", "", "Yesterday,", "Surprisingly,", "In the end,", "Last spring,",
           "As expected,", "For years,", "Once again,"]
QUESTIONS = [
    "Why do you think {s}?", "Could it be true that {s}?", "Is it surprising that {s}?",
]
CHAT_TASKS = [
    "Write a short story that begins with this sentence: {s}",
    "Explain in simple words what might happen next: {s}",
    "Describe the scene in a few sentences: {s}",
    "Write a friendly email that mentions this news: {s}",
]


def _words(text: str) -> int:
    return len(text.split())


def _one(rng: random.Random) -> str:
    opener = rng.choice(OPENERS)
    core = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
    parts = [core]
    if rng.random() < 0.7:
        parts.append(rng.choice(PLACES))
    if rng.random() < 0.5:
        parts.append(rng.choice(TAILS))
    text = " ".join(parts).replace(" which ", ", which ")
    if opener:
        text = f"{opener} {text}"
    if rng.random() < 0.12:
        text = rng.choice(QUESTIONS).format(s=text)
    else:
        text += "."
    return text[0].upper() + text[1:]


def sentences(count: int = 2048, seed: int = 1234, min_words: int = 8,
              max_words: int = 30) -> list[str]:
    """``count`` distinct-ish sentences whose word counts lie in [min_words, max_words]."""
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < count:
        text = _one(rng)
        if min_words <= _words(text) <= max_words:
            out.append(text)
    return out


def distinct_sentences(count: int, seed: int = 1234) -> list[str]:
    """``count`` sentences no two of which are equal: for loads that must never send an input
    twice (a server's response cache would answer the repeats)."""
    out: dict[str, None] = {}
    extra = 0
    while len(out) < count:
        out.update(dict.fromkeys(sentences(count + extra, seed=seed)))
        extra += count // 10 + 1
    return list(out)[:count]


def chat_prompts(count: int = 64, seed: int = 99) -> list[str]:
    """User messages for chat benchmarks, deterministic."""
    rng = random.Random(seed)
    base = sentences(count, seed=seed + 1)
    return [rng.choice(CHAT_TASKS).format(s=s) for s in base]


if __name__ == "__main__":
    sample = sentences(2048)
    lengths = [_words(s) for s in sample]
    print(f"{len(sample)} sentences, {len(set(sample))} distinct, words "
          f"{min(lengths)}-{max(lengths)}, mean {sum(lengths) / len(lengths):.1f}")
    for s in sample[:8]:
        print(" ", s)
    print(" ", chat_prompts(2)[0])
