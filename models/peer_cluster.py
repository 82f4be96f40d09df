#!/usr/bin/env python3
"""dlib's own Chinese whispers on the embeddings facegate clusters, beside facegate's methods.

Reads the sets written by `facegate eval cluster --export DIR` (one JSON file per set: the
embeddings, one per image, and the true person of each), runs
`dlib.chinese_whispers_clustering` on exactly those vectors at the given cuts, scores it with
the same pairwise and BCubed formulas as src/identity/cluster.rs, and prints one table with
facegate's rows (from `facegate eval cluster --json`, read from --facegate-rows).

Run through models/peer-cluster, which makes the venv (dlib-bin) and runs facegate first.
"""
import argparse
import collections
import glob
import json
import os
import time

import dlib


def scores(found, truth):
    pairs = lambda c: c * (c - 1) / 2
    joint = collections.Counter(zip(found, truth))
    fc, tc = collections.Counter(found), collections.Counter(truth)
    tp = sum(pairs(c) for c in joint.values())
    fp_all = sum(pairs(c) for c in fc.values())
    tp_all = sum(pairs(c) for c in tc.values())
    p = tp / fp_all if fp_all else 1.0
    r = tp / tp_all if tp_all else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    n = len(found)
    bp = sum(joint[(f, t)] / fc[f] for f, t in zip(found, truth)) / n
    br = sum(joint[(f, t)] / tc[t] for f, t in zip(found, truth)) / n
    bf = 2 * bp * br / (bp + br) if bp + br else 0.0
    return p, r, f1, bf, len(fc), len(tc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", required=True, help="folder written by facegate eval cluster --export")
    ap.add_argument("--facegate-rows", required=True, help="facegate eval cluster --json output")
    ap.add_argument("--cuts", default="0.45,0.475,0.5,0.55,0.5614")
    a = ap.parse_args()
    cuts = [float(c) for c in a.cuts.split(",")]
    rows = []
    for path in sorted(glob.glob(os.path.join(a.sets, "*.json"))):
        s = json.load(open(path))
        vecs = [dlib.vector(f) for f in s["faces"]]
        for t in cuts:
            start = time.time()
            labels = dlib.chinese_whispers_clustering(vecs, t)
            took = time.time() - start
            rows.append((s["name"], "dlib chinese_whispers", t) + scores(labels, s["truth"]) + (took,))
    for r in json.load(open(a.facegate_rows)):
        if any(abs(r["threshold"] - c) < 1e-4 for c in cuts) or r["method"] == "average":
            rows.append((r["set"], "facegate " + r["method"], r["threshold"], r["pairwise_precision"],
                         r["pairwise_recall"], r["pairwise_f1"], r["bcubed_f1"], r["clusters"],
                         r["true_clusters"], r["seconds"]))
    print(f"{'set':<38} {'method':<30} {'cut':>6} {'P':>7} {'R':>7} {'F1':>7} {'BCubed':>7} {'clusters/true':>14} {'s':>7}")
    for r in sorted(rows, key=lambda r: (r[0], r[2], r[1])):
        print(f"{r[0]:<38} {r[1]:<30} {r[2]:>6.4f} {r[3]:>7.4f} {r[4]:>7.4f} {r[5]:>7.4f} {r[6]:>7.4f} "
              f"{str(r[7]) + '/' + str(r[8]):>14} {r[9]:>7.2f}")


if __name__ == "__main__":
    main()
