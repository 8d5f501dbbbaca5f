#!/usr/bin/env python3
"""Builds the evaluation sets of BENCHMARKS.md (section "Bot, issue 20") as JSONL files
(`{"text": ..., "label": ...}`, label `oos` for out-of-scope lines) from public sources the
caller has on disk. Nothing here is downloaded; the sources are:

- CLINC150 (clinc/oos-eval, `data/data_full.json`, CC BY 3.0): English, 150 intents plus `oos`.
- Dialogflow's prebuilt Chinese small-talk agent in Rasa format (howl-anderson/NLU_benchmark_dataset,
  `dataset/dialogflow/small-talk/rasa_format/zh-CN.zip`, unzipped `data.json`): 83 intents.
- chatterbot-corpus (PyPI `chatterbot-corpus`, `chatterbot_corpus/data/chinese/*.yml`): Chinese
  chit-chat questions, used as out-of-scope questions for the bundled e-commerce FAQ.

Usage:
    python3 prepare_data.py --clinc data_full.json --smalltalk-zh data.json \
        --chatterbot-zh DIR --faq ../data/ecommerce_faq.txt --out OUTDIR

Splits are deterministic (seeded). Noisy-label variants flip a share of the *training* labels
only (test labels stay clean) to measure robustness to label noise.
"""
import argparse
import collections
import json
import os
import random


def write(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for text, label in rows:
            f.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")
    print(f"{path}: {len(rows)} lines, {len({l for _, l in rows})} labels")


def stratified(rows, test_share, seed):
    by = collections.defaultdict(list)
    for r in rows:
        by[r[1]].append(r)
    rng = random.Random(seed)
    train, test = [], []
    for label in sorted(by):
        items = by[label][:]
        rng.shuffle(items)
        k = max(1, round(len(items) * test_share)) if len(items) > 2 else 0
        test += items[:k]
        train += items[k:]
    rng.shuffle(train)
    return train, test


def noisy(rows, share, seed):
    rng = random.Random(seed)
    labels = sorted({l for _, l in rows})
    out = []
    for text, label in rows:
        if rng.random() < share:
            label = rng.choice([l for l in labels if l != label])
        out.append((text, label))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clinc")
    ap.add_argument("--smalltalk-zh")
    ap.add_argument("--chatterbot-zh")
    ap.add_argument("--faq")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)

    if a.clinc:
        d = json.load(open(a.clinc, encoding="utf-8"))
        train = [(t, l) for t, l in d["train"]]
        test = [(t, l) for t, l in d["test"]] + [(t, "oos") for t, _ in d["oos_test"]]
        write(f"{a.out}/clinc150_train.jsonl", train)
        # The knowledge file's out-of-scope section: CLINC's 100 oos training lines.
        write(f"{a.out}/clinc150_train_oos.jsonl", train + [(t, "oos") for t, _ in d["oos_train"]])
        write(f"{a.out}/clinc150_test.jsonl", test)
        write(f"{a.out}/clinc150_train_noisy20.jsonl", noisy(train, 0.2, 20))

    if a.smalltalk_zh:
        d = json.load(open(a.smalltalk_zh, encoding="utf-8"))
        rows = [(e["text"].strip(), e["intent"]) for e in d["rasa_nlu_data"]["common_examples"]]
        rows = [r for r in rows if r[0]]
        train, test = stratified(rows, 0.3, 83)
        write(f"{a.out}/smalltalk_zh_train.jsonl", train)
        write(f"{a.out}/smalltalk_zh_test.jsonl", test)
        write(f"{a.out}/smalltalk_zh_train_noisy20.jsonl", noisy(train, 0.2, 21))

    if a.faq and a.chatterbot_zh:
        # The bundled FAQ's phrasings, split by entry (every 4th phrasing held out), with
        # Chinese chit-chat as out-of-scope test lines. The FAQ was written by the project, so
        # this is a sanity check of the out-of-scope path, not a held-out benchmark.
        entries, cur = [], None
        for line in open(a.faq, encoding="utf-8"):
            line = line.strip()
            if not line:
                cur = None
                continue
            if line.startswith("Intent:"):
                cur = [line.split(":", 1)[1].strip(), []]
                entries.append(cur)
            elif line.startswith("Q:") and cur is not None:
                cur[1].append(line[2:].strip())
        train, test = [], []
        for intent, qs in entries:
            for i, q in enumerate(qs):
                (test if i % 4 == 3 else train).append((q, intent))
        oos = []
        for name in sorted(os.listdir(a.chatterbot_zh)):
            if not name.endswith(".yml"):
                continue
            lines = open(os.path.join(a.chatterbot_zh, name), encoding="utf-8").read().splitlines()
            # Each conversation is `- - question` followed by `  - answer` lines.
            for ln in lines:
                s = ln.strip()
                if s.startswith("- - "):
                    q = s[4:].strip().strip("'\"")
                    if len(q) >= 2:
                        oos.append((q, "oos"))
        rng = random.Random(7)
        rng.shuffle(oos)
        half = len(oos) // 2
        write(f"{a.out}/faq_zh_train.jsonl", train)
        write(f"{a.out}/faq_zh_train_oos.jsonl", train + oos[:half])
        write(f"{a.out}/faq_zh_test.jsonl", test + oos[half:])


if __name__ == "__main__":
    main()
