#!/usr/bin/python3
"""The baseline of bench/trace_bench.cc: a straightforward NumPy/SciPy implementation of the
statistics `referee trace` computes for one pair of models (src/trace/fingerprint.cc,
weight_evidence.cc): probe responses, count sketches of every matrix, copy distances, the CKA
layer maps, AWM's embedding alignment and Q/K CKA, the one-to-one layer pairing, and per paired
layer the neuron-order and gate/up agreement tests with Fisher's combination.

    bench/trace_numpy.py PLAN.json OUT.json

PLAN.json (written by trace_bench) names, for each model, where each tensor's bytes are (file,
offset, dtype, shape) and which embedding rows are the probe tokens: choosing probes needs XXH3,
which NumPy does not have, and is not where the time goes. Tensors are read with numpy.fromfile.
Responses, embedding rows and attention sketches are rounded to float16, as referee keeps them.
OUT.json holds the numbers and the time taken (reading, and computing).
"""
import json
import math
import sys
import time

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import chi2, norm, spearmanr

MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def mix64(x):
    """SplitMix64's output function on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


LOW_TABLE = mix64(np.arange(65536, dtype=np.uint64) ^ np.uint64(0x243F6A8885A308D3))


def read(t):
    count = int(np.prod(t["shape"])) if t["shape"] else 1
    if t["dtype"] == "F32":
        a = np.fromfile(t["file"], dtype="<f4", count=count, offset=t["offset"])
    elif t["dtype"] == "BF16":
        u = np.fromfile(t["file"], dtype="<u2", count=count, offset=t["offset"])
        a = (u.astype(np.uint32) << np.uint32(16)).view(np.float32)
    elif t["dtype"] == "F16":
        a = np.fromfile(t["file"], dtype="<f2", count=count, offset=t["offset"]).astype(np.float32)
    else:
        raise SystemExit(f"trace_numpy: dtype {t['dtype']} not handled by the baseline")
    return a.reshape(t["shape"])


def f16(x):
    return np.clip(x, -65504, 65504).astype(np.float16).astype(np.float32)


def count_sketch(values, width):
    """referee's block-rotated sign sketch (docs/json/fingerprint.md), element by element."""
    i = np.arange(values.size, dtype=np.uint64)
    low_sign = np.where((LOW_TABLE[(i & np.uint64(0xFFFF)).astype(np.int64)] >> np.uint64(63)) == 1, -1.0, 1.0)
    high_sign = np.where((mix64((i >> np.uint64(16)) ^ np.uint64(0x13198A2E03707344)) >> np.uint64(63)) == 1, -1.0, 1.0)
    with np.errstate(over="ignore"):
        rotation = mix64((i // np.uint64(width)) ^ np.uint64(0xA4093822299F31D0))
        bucket = ((i + rotation) & np.uint64(width - 1)).astype(np.int64)
    return np.bincount(bucket, weights=low_sign * high_sign * values.astype(np.float64).ravel(), minlength=width)


def sketch_width(elements, requested=1024):
    w = 1
    while w * 2 <= min(requested, max(elements, 1)):
        w *= 2
    return w


def fingerprint(m):
    """Everything the statistics need from one model."""
    emb = read(m["embedding"])
    e = emb[np.array(m["probe_ids"])].astype(np.float32)
    norms = {(n["layer"], n["role"]): read(n) for n in m["norms"]}
    out = {"probe_tokens": m["probe_tokens"], "embeddings": f16(e), "responses": {}, "hidden": {}, "matrices": []}
    for t in m["matrices"]:
        w = read(t)
        out["matrices"].append({"name": t["name"], "shape": tuple(t["shape"]), "layer": t["layer"],
                                "norm": float(np.sqrt(np.sum(w.astype(np.float64) ** 2))),
                                "sketch": count_sketch(w, sketch_width(w.size))})
        if t.get("kind") is None:
            continue
        role = "attn_norm" if t["kind"] in ("attn_q", "attn_k") else "mlp_norm"
        g = norms.get((t["layer"], role), np.ones(e.shape[1], dtype=np.float32))
        rms = np.sqrt(np.mean(e.astype(np.float64) ** 2, axis=1, keepdims=True) + 1e-6)
        n = (e / rms).astype(np.float32) * g
        w2 = w.reshape(-1, w.shape[-1])
        out["responses"][(t["layer"], t["kind"])] = f16(w2[: m["max_units"]] @ n.T)
        if t["kind"] in ("attn_q", "attn_k"):
            k = min(w2.shape[0], 128)
            if w2.shape[0] <= k:
                out["hidden"][(t["layer"], t["kind"])] = f16(w2.T.copy())
            else:
                h = mix64(np.arange(w2.shape[0], dtype=np.uint64) ^ np.uint64(0xA0761D6478BD642F))
                bucket = (h % np.uint64(k)).astype(np.int64)
                sign = np.where((h >> np.uint64(63)) == 1, -1.0, 1.0).astype(np.float32)
                x = np.zeros((k, w2.shape[1]), dtype=np.float32)
                np.add.at(x, bucket, w2 * sign[:, None])
                out["hidden"][(t["layer"], t["kind"])] = f16(x.T.copy())
    return out


def gram(x):
    x = x.astype(np.float64)
    x = x - x.mean(axis=0)
    k = x @ x.T
    np.fill_diagonal(k, 0.0)
    return k


def hsic(k, l):
    n = k.shape[0]
    return (np.sum(k * l) + k.sum() * l.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * np.dot(k.sum(0), l.sum(0))) / (n * (n - 3))


def cka(k, l):
    d = hsic(k, k) * hsic(l, l)
    return hsic(k, l) / math.sqrt(d) if d > 0 else 0.0


def standardized_rows(x):
    x = x.astype(np.float64) - x.mean(axis=1, keepdims=True)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def match(score):
    rows, cols = linear_sum_assignment(score, maximize=True)
    return rows, cols


def log_p_spearman(rho, n):
    return float(norm.logsf(rho * math.sqrt(n - 1)))


def neuron_test(ga, ua, gb, ub, a_units):
    """A's first a_units neurons matched among all of B's (as referee does)."""
    ga, ua = ga[:a_units], ua[:a_units]
    sg = standardized_rows(ga) @ standardized_rows(gb).T
    su = standardized_rows(ua) @ standardized_rows(ub).T
    both = (sg + su).astype(np.float32)
    r, c = match(both)
    rho = spearmanr(r, c).correlation
    rg, cg = match(sg.astype(np.float32))
    ru, cu = match(su.astype(np.float32))
    by_gate = dict(zip(rg, cg))
    by_up = dict(zip(ru, cu))
    common = [i for i in by_gate if i in by_up]
    rho_gu = spearmanr([by_gate[i] for i in common], [by_up[i] for i in common]).correlation
    return {"rho_identity": float(rho), "log_p_identity": log_p_spearman(rho, len(r)),
            "rho_gate_up": float(rho_gu), "log_p_gate_up": log_p_spearman(rho_gu, len(common)),
            "mean_matched_correlation": float(np.mean(both[r, c]) / 2), "matched": int(len(r))}


def compare(a, b, test_units):
    b_index = {t: i for i, t in enumerate(b["probe_tokens"])}
    ca = [i for i, t in enumerate(a["probe_tokens"]) if t in b_index]
    cb = [b_index[a["probe_tokens"][i]] for i in ca]
    layers_a = sorted({l for l, _ in a["responses"]})
    layers_b = sorted({l for l, _ in b["responses"]})

    def grams(f, cols, kinds):
        out = {}
        for l in sorted({l for l, _ in f["responses"]}):
            parts = [f["responses"][(l, k)][:, cols] for k in kinds if (l, k) in f["responses"]]
            out[l] = gram(np.concatenate(parts, axis=0).T) if parts else None
        return out

    att_a, att_b = grams(a, ca, ["attn_q", "attn_k"]), grams(b, cb, ["attn_q", "attn_k"])
    mlp_a, mlp_b = grams(a, ca, ["mlp_gate", "mlp_up"]), grams(b, cb, ["mlp_gate", "mlp_up"])
    na, nb = len(layers_a), len(layers_b)
    attention = np.full((na, nb), np.nan)
    mlp = np.full((na, nb), np.nan)
    for i, la in enumerate(layers_a):
        for j, lb in enumerate(layers_b):
            if att_a[la] is not None and att_b[lb] is not None:
                attention[i, j] = cka(att_a[la], att_b[lb])
            if mlp_a[la] is not None and mlp_b[lb] is not None:
                mlp[i, j] = cka(mlp_a[la], mlp_b[lb])
    combined = np.nanmean(np.stack([attention, mlp]), axis=0)

    # Copies (identical or within 0.05 relative distance) pull a layer pairing towards its donor.
    copies = {}
    b_matrices = {}
    for tb in b["matrices"]:
        if tb["layer"] >= 0:
            b_matrices[tb["layer"]] = b_matrices.get(tb["layer"], 0) + 1
        best = None
        for ta in a["matrices"]:
            if ta["shape"] != tb["shape"] or ta["norm"] == 0 or tb["norm"] == 0:
                continue
            d = np.linalg.norm(ta["sketch"] - tb["sketch"]) / math.sqrt(ta["norm"] * tb["norm"])
            if best is None or d < best[0]:
                best = (d, ta)
        if best and best[0] <= 0.05 and best[1]["layer"] >= 0 and tb["layer"] >= 0:
            key = (best[1]["layer"], tb["layer"])
            copies[key] = copies.get(key, 0) + 1
    pairing = np.nan_to_num(combined, nan=-1.0)
    for (la, lb), n in copies.items():
        i, j = layers_a.index(la), layers_b.index(lb)
        pairing[i, j] = (0 if np.isnan(combined[i, j]) else combined[i, j]) + 2.0 * n / b_matrices[lb]
    rows, cols = match(pairing.astype(np.float32))

    tests = []
    for i, j in zip(rows, cols):
        la, lb = layers_a[i], layers_b[j]
        ra, rb = a["responses"], b["responses"]
        if all((la, k) in ra for k in ("mlp_gate", "mlp_up")) and all((lb, k) in rb for k in ("mlp_gate", "mlp_up")):
            t = neuron_test(ra[(la, "mlp_gate")][:, ca], ra[(la, "mlp_up")][:, ca],
                            rb[(lb, "mlp_gate")][:, cb], rb[(lb, "mlp_up")][:, cb], test_units)
            t.update({"a_layer": la, "b_layer": lb})
            tests.append(t)

    def fisher(logs):
        # chi2.logsf underflows to -inf far out in the tail; for 2k degrees of freedom the
        # survival function is exp(-x/2) sum_{i<k} (x/2)^i / i!, summed here in log space.
        if not logs:
            return 0.0
        x, k = -2.0 * sum(logs), len(logs)
        value = float(chi2.logsf(x, 2 * k))
        if math.isfinite(value):
            return value
        h = x / 2.0
        terms = np.array([i * math.log(h) - math.lgamma(i + 1) for i in range(k)])
        top = terms.max()
        return float(-h + top + math.log(np.exp(terms - top).sum()))

    # AWM: hidden dimensions aligned through the shared probe tokens' embedding rows.
    za = standardized_rows(a["embeddings"][ca].T)
    zb = standardized_rows(b["embeddings"][cb].T)
    corr = za @ zb.T
    ai, bj = match(np.abs(corr).astype(np.float32))
    signs = np.sign(corr[ai, bj])
    signs[signs == 0] = 1
    awm = np.full((na, nb), np.nan)
    for i, la in enumerate(layers_a):
        for j, lb in enumerate(layers_b):
            vals = []
            for k in ("attn_q", "attn_k"):
                if (la, k) in a["hidden"] and (lb, k) in b["hidden"]:
                    xa = a["hidden"][(la, k)][ai] * signs[:, None]
                    xb = b["hidden"][(lb, k)][bj]
                    vals.append(cka(gram(xa), gram(xb)))
            if vals:
                awm[i, j] = float(np.mean(vals))
    return {"attention": attention.tolist(), "mlp": mlp.tolist(), "combined": combined.tolist(), "awm": awm.tolist(),
            "neuron_tests": tests,
            "log10_p_identity": fisher([t["log_p_identity"] for t in tests]) / math.log(10),
            "log10_p_gate_up": fisher([t["log_p_gate_up"] for t in tests]) / math.log(10)}


def finite_or_null(x):
    """JSON has no NaN or infinities: they become null, as in referee's report."""
    if isinstance(x, dict):
        return {k: finite_or_null(v) for k, v in x.items()}
    if isinstance(x, list):
        return [finite_or_null(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def main():
    plan = json.load(open(sys.argv[1]))
    start = time.perf_counter()
    # Reading alone, for the record (the fingerprint below reads again, as a straightforward
    # implementation would).
    for m in plan["models"]:
        for t in m["matrices"]:
            read(t)
    read_seconds = time.perf_counter() - start
    start = time.perf_counter()
    fa, fb = (fingerprint(m) for m in plan["models"])
    result = compare(fa, fb, plan["test_units"])
    result["seconds"] = time.perf_counter() - start
    result["read_seconds"] = read_seconds
    json.dump(finite_or_null(result), open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
