#!/usr/bin/env python3
"""Classical baselines for `bot_eval`, trained and tested on the same split in the same run:

- `tfidf_lr`: TF-IDF over words (jieba for Chinese) + logistic regression, C chosen on a
  stratified 20% slice of the training data from {1, 10, 100}.
- `svm_word_char`: TF-IDF over word 1-2-grams + character 1-5-grams (sublinear tf) + a linear
  SVM, C chosen on the same slice from {0.03, 0.1, 0.3, 1, 3}.

When the test file has lines labelled `oos`, each baseline also reports `in_scope_accuracy`
(in-scope lines, a false out-of-scope counts wrong) and `oos_recall`, with the rejection
threshold on its top score chosen on the held-out slice by the same rule the bot uses: the
highest threshold that rejects at most 1% of the held-out in-scope lines it gets right. Training
lines labelled `oos` (a knowledge file's out-of-scope section) are trained as a class.

    pip install scikit-learn jieba
    python3 baselines.py --train TRAIN --test TEST   # one JSON line per baseline
"""
import argparse
import csv
import json
import re
import sys
import time

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.svm import LinearSVC

import jieba

jieba.setLogLevel(60)
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[^\W_]+", re.UNICODE)


def words(text):
    out = []
    for m in TOKEN.finditer(text.lower()):
        s = m.group(0)
        if CJK.fullmatch(s):
            out.extend(jieba.lcut(s))
        else:
            out.append(s)
    return out


def read(path):
    if path.endswith(".csv"):
        with open(path, encoding="utf-8-sig") as f:
            r = csv.DictReader(f)
            tcol = next(c for c in r.fieldnames if c in ("text", "query", "sentence", "utterance", "question"))
            lcol = next(c for c in r.fieldnames if c in ("label", "intent", "category"))
            return [(row[tcol], row[lcol]) for row in r]
    rows = []
    for line in open(path, encoding="utf-8"):
        if line.strip():
            d = json.loads(line)
            rows.append((d["text"], d["label"]))
    return rows


def lr_model(c):
    return make_pipeline(
        TfidfVectorizer(tokenizer=words, lowercase=False, token_pattern=None),
        LogisticRegression(C=c, max_iter=3000),
    )


def svm_model(c):
    return make_pipeline(
        FeatureUnion([
            ("w", TfidfVectorizer(tokenizer=words, lowercase=False, token_pattern=None,
                                  ngram_range=(1, 2), sublinear_tf=True)),
            ("c", TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 5), sublinear_tf=True)),
        ]),
        LinearSVC(C=c),
    )


def top_scores(model, texts):
    s = model.predict_proba(texts) if hasattr(model, "predict_proba") else model.decision_function(texts)
    return s.max(axis=1), model.classes_[s.argmax(axis=1)]


def choose_threshold(conf, pred, gold, budget=0.01):
    """The highest threshold rejecting at most `budget` of the in-scope lines it gets right."""
    inscope = [i for i, g in enumerate(gold) if g != "oos"]
    right = sorted(conf[i] for i in inscope if pred[i] == gold[i] and pred[i] != "oos")
    k = int(budget * len(inscope))
    if not right:
        return -1e9
    return right[min(k, len(right) - 1)] if k > 0 else right[0]


def evaluate(name, make, grid, train, test):
    texts = [t for t, _ in train]
    labels = [l for _, l in train]
    t0 = time.time()
    tr_t, ho_t, tr_l, ho_l = train_test_split(texts, labels, test_size=0.2, random_state=7, stratify=labels)
    best = None
    for c in grid:
        m = make(c).fit(tr_t, tr_l)
        acc = float(np.mean(m.predict(ho_t) == np.array(ho_l)))
        if best is None or acc > best[1]:
            best = (c, acc, m)
    c, _, m = best
    conf, pred = top_scores(m, ho_t)
    threshold = choose_threshold(conf, pred, ho_l)
    model = make(c).fit(texts, labels)
    train_secs = time.time() - t0
    gold = [l for _, l in test]
    conf, pred = top_scores(model, [t for t, _ in test])
    # Latency of one prediction at a time, as the bot calls it.
    times = []
    for t, _ in test[:500]:
        s = time.perf_counter()
        top_scores(model, [t])
        times.append((time.perf_counter() - s) * 1e6)
    times.sort()
    out = {
        "model": name,
        "c": c,
        "train": len(train),
        "test": len(test),
        "accuracy": round(float(np.mean(pred == np.array(gold))), 4),
        "macro_f1": round(float(f1_score(gold, pred, average="macro")), 4),
        "train_secs": round(train_secs, 2),
        "p50_us": round(times[len(times) // 2], 1),
        "p99_us": round(times[int(len(times) * 0.99) - 1], 1),
    }
    if "oos" in gold:
        flagged = [p == "oos" or s < threshold for p, s in zip(pred, conf)]
        ins = [i for i, g in enumerate(gold) if g != "oos"]
        oos = [i for i, g in enumerate(gold) if g == "oos"]
        in_right = sum(1 for i in ins if not flagged[i] and pred[i] == gold[i])
        pred_in = [p for p, g in zip(pred, gold) if g != "oos"]
        gold_in = [g for g in gold if g != "oos"]
        out["accuracy"] = round(float(np.mean(np.array(pred_in) == np.array(gold_in))), 4)
        out["macro_f1"] = round(float(f1_score(gold_in, pred_in, average="macro")), 4)
        out["threshold"] = round(float(threshold), 4)
        out["in_scope_accuracy"] = round(in_right / len(ins), 4)
        out["oos_recall"] = round(sum(1 for i in oos if flagged[i]) / len(oos), 4)
    print(json.dumps(out))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    a = ap.parse_args()
    train, test = read(a.train), read(a.test)
    evaluate("tfidf_lr", lr_model, [1, 10, 100], train, test)
    evaluate("svm_word_char", svm_model, [0.03, 0.1, 0.3, 1, 3], train, test)


if __name__ == "__main__":
    main()
