#!/usr/bin/env python3
"""Writes fixtures/eagle/{train,eval}-prompts.txt from the tiny model's texts, deterministically.

Training prompts: "Continue this text: " + every 15th non-blank line of fixtures/tiny-qwen2/calibration.txt
(the first 64). Evaluation prompts: the same from every 30th non-blank line of heldout.txt (the first 16), so
the two sets come from disjoint texts. Lines are cut at the last space before 160 characters.
Run from the repository root: python3 tools/eagle/make_prompts.py
"""
from pathlib import Path


def prompts(src, every, count):
    lines = [l.strip() for l in Path(src).read_text(encoding="utf-8").splitlines() if l.strip()]
    out = []
    for line in lines[::every][:count]:
        if len(line) > 160:
            line = line[:160].rsplit(" ", 1)[0]
        out.append("Continue this text: " + line)
    if len(out) != count:
        raise SystemExit(f"{src}: only {len(out)} prompts, wanted {count}")
    return out


def main():
    base = Path("fixtures/tiny-qwen2")
    dest = Path("fixtures/eagle")
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "train-prompts.txt").write_text("\n".join(prompts(base / "calibration.txt", 15, 64)) + "\n", encoding="utf-8")
    (dest / "eval-prompts.txt").write_text("\n".join(prompts(base / "heldout.txt", 30, 16)) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
