#!/usr/bin/env python3
"""Writes fixtures/tasks/verse-endings.jsonl, the tiny-qwen2 fixture's bundled multiple-choice task.

Regenerate (from the repository root; Python 3.2 or later, standard library only):

    python3 tools/tasks/make_verse_task.py

The output is deterministic: rerunning it reproduces the committed file byte for byte
(`git diff --exit-code fixtures/tasks/verse-endings.jsonl` after a run).

Source
    fixtures/tiny-qwen2/heldout.txt, one KJV verse per line (Ruth, Lamentations, Jonah, Colossians, Philemon,
    James). Neither the model nor its tokenizer ever saw these books (see fixtures/tiny-qwen2/FIXTURE.md).
    fixtures/tiny-qwen2/calibration.txt is read only to exclude items: a verse whose context occurs anywhere in
    a calibration line, or which is itself a calibration line, is skipped, so no context comes from the
    calibration text.

Split rule (verse -> context + ending, context + ending == verse exactly)
    The split is at the space nearest to the middle of the verse (the index i of a space minimising
    |2 i - n| for a verse of n characters; the earlier one on a tie): the context is verse[:i], the ending
    verse[i:], so the continuation a model scores always starts with " ". Splitting mid-phrase rather than at a
    clause mark (", ", "; ", ": " past 40% of the verse) makes the first words of the ending depend on the
    context. Measured with a throwaway lm-evaluation-harness-style scorer on the Java model before m2q had
    its own: on the clause-mark split with a +-30% length window the BF16 fixture scored acc 30.1% and
    acc_norm 38.8% (chance 25%, 515 items); on this rule with the +-10% window below, acc 42.9% and
    acc_norm 44.5%.
    A verse is skipped as too short when it has fewer than MIN_WORDS words or when either side of its split
    would have fewer than MIN_SIDE_WORDS words. A verse is also skipped when its context equals an earlier
    kept verse's context (the other verse's ending would be a second right answer).

Distractor rule
    For each item, the candidates are the endings of all other kept verses whose ending differs from the true
    ending (as a string). Those whose character length is within +-10% of the true ending's length
    (|len(candidate) - len(true)| <= 0.1 len(true)) form the pool, so that length alone (which favours short
    endings under the total log-likelihood) says little; three distinct endings are drawn from the
    pool with rng.sample. If the pool holds fewer than three distinct endings, it is filled up with the
    remaining candidates nearest in length (by absolute length difference, then file order); the run prints
    how many items needed that.

Answer position
    The true ending and its three distractors are shuffled with rng.shuffle, so the correct index is uniform
    over 0..3; "answer" is the index of the true ending after the shuffle.

Seed
    One random.Random(SEED) with SEED = 20261204, consumed item by item in file order (sample, then shuffle).

Output
    One JSON object per line, keys in this order: {"id": "verse-0001", "context": ..., "choices": [4 strings],
    "answer": index}; ids numbered 1.. over the kept verses in file order; UTF-8, "\\n" line endings,
    json.dumps with ensure_ascii=True. The run prints the item count, the skipped verses by reason and the
    answer-index distribution.
"""
import json
import random
import sys
from pathlib import Path

SEED = 20261204
SOURCE = Path("fixtures/tiny-qwen2/heldout.txt")
CALIBRATION = Path("fixtures/tiny-qwen2/calibration.txt")
OUTPUT = Path("fixtures/tasks/verse-endings.jsonl")
CHOICES = 4
MIN_WORDS = 6
MIN_SIDE_WORDS = 2
LENGTH_TOLERANCE = 0.1


def split_verse(verse):
    """Returns (context, ending) with context + ending == verse and ending starting with a space, or None."""
    n = len(verse)
    spaces = [i for i, c in enumerate(verse) if c == " "]
    if not spaces:
        return None
    j = min(spaces, key=lambda i: (abs(2 * i - n), i))
    return verse[:j], verse[j:]


def main():
    verses = SOURCE.read_text(encoding="utf-8").split("\n")
    if verses and verses[-1] == "":
        verses.pop()
    calibration = CALIBRATION.read_text(encoding="utf-8").split("\n")
    calibration_lines = set(calibration)

    skipped = {"too short": 0, "context in calibration text": 0, "verse in calibration text": 0,
               "context repeats an earlier verse's": 0}
    kept = []
    contexts = set()
    for verse in verses:
        parts = split_verse(verse) if len(verse.split()) >= MIN_WORDS else None
        if parts is None or min(len(parts[0].split()), len(parts[1].split())) < MIN_SIDE_WORDS:
            skipped["too short"] += 1
            continue
        context, ending = parts
        assert context + ending == verse and ending.startswith(" ") and not context.endswith(" ")
        if verse in calibration_lines:
            skipped["verse in calibration text"] += 1
            continue
        if any(context in line for line in calibration):
            skipped["context in calibration text"] += 1
            continue
        if context in contexts:
            skipped["context repeats an earlier verse's"] += 1
            continue
        contexts.add(context)
        kept.append((context, ending))

    rng = random.Random(SEED)
    widened = 0
    counts = [0] * CHOICES
    lines = []
    for k, (context, ending) in enumerate(kept):
        others = []
        seen = {ending}
        for m, (_, other) in enumerate(kept):
            if m != k and other not in seen:
                seen.add(other)
                others.append(other)
        pool = [o for o in others if abs(len(o) - len(ending)) <= LENGTH_TOLERANCE * len(ending)]
        if len(pool) >= CHOICES - 1:
            distractors = rng.sample(pool, CHOICES - 1)
        else:
            widened += 1
            rest = sorted((o for o in others if o not in pool), key=lambda o: abs(len(o) - len(ending)))
            distractors = pool + rest[: CHOICES - 1 - len(pool)]
        choices = [ending] + distractors
        rng.shuffle(choices)
        answer = choices.index(ending)
        counts[answer] += 1
        item = {"id": "verse-%04d" % (k + 1), "context": context, "choices": choices, "answer": answer}
        lines.append(json.dumps(item, ensure_ascii=True))

    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUTPUT, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(line + "\n" for line in lines))

    print("%s: %d items from %d verses of %s" % (OUTPUT, len(lines), len(verses), SOURCE))
    for reason, count in skipped.items():
        print("  skipped (%s): %d" % (reason, count))
    print("  distractor pool widened beyond +-%d%%: %d items" % (round(100 * LENGTH_TOLERANCE), widened))
    print("  answer index distribution: " + ", ".join("%d: %d" % (i, c) for i, c in enumerate(counts)))
    if len(lines) < 400:
        sys.exit("only %d items, wanted at least 400" % len(lines))


if __name__ == "__main__":
    main()
