"""All benchmarks in one table of ratios, each against its baseline run side by side.

    python benchmarks/run_all.py [--run] [--only NAME ...]

Without --run it only collects the results already in benchmarks/results/*.json; with --run
it first runs each benchmark script (cut, extract, hands, train, predict, live_hands, scaling, demo,
inputs, annotate, in that order; --only limits which are run and shown). A result file that is missing is shown as
"not measured": nothing is estimated or filled in.

Prints the table and writes benchmarks/results/summary.json and benchmarks/results/summary.md
(a Markdown table with the date and a machine note, ready to paste into the README).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
NAMES = ("cut", "extract", "hands", "train", "predict", "live_hands", "scaling", "demo", "inputs", "annotate")


def _get(d, *path):
    for p in path:
        if isinstance(d, dict) and p in d:
            d = d[p]
        elif isinstance(d, list) and isinstance(p, int) and -len(d) <= p < len(d):
            d = d[p]
        else:
            return None
    return d


def row(bench, measure, baseline, ratio, aim, met, note=""):
    return {"bench": bench, "measure": measure, "baseline": baseline,
            "ratio": None if ratio is None else round(float(ratio), 3), "aim": aim,
            "met": met, "note": note}


def missing(bench, measure, baseline, aim):
    return row(bench, measure, baseline, None, aim, None, "not measured")


def _check(value, ok):
    return None if value is None else bool(ok(value))


def rows_cut(d):
    out = []
    for key, label in (("speedup_vs_moviepy_default", "moviepy, its defaults"),
                       ("speedup_vs_moviepy_same_settings", "moviepy, fetch's encoder settings")):
        v = _get(d, "speed", key)
        out.append(row("cut", "cut speed (clips/s)", label, v, ">= 3x", _check(v, lambda x: x >= 3),
                       "" if v is not None else "not measured"))
    f = _get(d, "accuracy", "summary", "fetch", "max_abs_start_off_frames")
    fe = _get(d, "accuracy", "summary", "fetch", "max_abs_end_off_frames")
    c = _get(d, "accuracy", "summary", "copy_stored", "max_abs_start_off_frames")
    if f is None or c is None:
        out.append(missing("cut", "cut frame offset (max, frames)", "keyframe stream copy", "0 frames"))
    else:
        out.append(row("cut", "cut frame offset (max, frames)", "keyframe stream copy", None, "0 frames",
                       f == 0 and (fe or 0) == 0,
                       f"fetch start/end off {f}/{fe} frames vs stream copy start off {c} frames "
                       f"(mean {_get(d, 'accuracy', 'summary', 'copy_stored', 'mean_early_s')} s early)"))
    return out


def rows_extract(d):
    out = []
    aim_o = _get(d, "aims", "overhead_below") or 0.25
    aim_s = _get(d, "aims", "speedup_at_least") or 1.6
    n = _get(d, "rounds")
    for key, base in (("overhead_jobs1_vs_bare_1thread", "bare OpenCV loop, 1 thread"),
                      ("overhead_jobs1_vs_bare_default_threads", "bare OpenCV loop, default threads")):
        for stat in ("paired_median", "best_of"):
            v = _get(d, "ratios", key, stat)
            label = "paired median" if stat == "paired_median" else f"best of {n}"
            out.append(row("extract", f"extraction overhead, --jobs 1 ({label})", base, v, f"< {aim_o:.0%}",
                           _check(v, lambda x: x < aim_o), "" if v is not None else "not measured"))
    for stat in ("paired_median", "best_of"):
        v = _get(d, "ratios", "speedup_jobs1_to_jobs2", stat)
        label = "paired median" if stat == "paired_median" else f"best of {n}"
        out.append(row("extract", f"extraction speed-up 1 -> 2 jobs ({label})", "--jobs 1", v, f">= {aim_s}x",
                       _check(v, lambda x: x >= aim_s), "" if v is not None else "not measured"))
    return out


def rows_hands(d):
    out = []
    aim = _get(d, "aims", "throughput_at_least") or 0.9
    n = _get(d, "rounds")
    fps = {c.get("contender"): c for c in _get(d, "contenders") or []}
    one, bare = fps.get("stage --jobs 1", {}), fps.get("bare HandLandmarker loop", {})
    for stat in ("paired_median", "best_of"):
        v = _get(d, "ratios", "throughput_jobs1_vs_bare", stat)
        label = "paired median" if stat == "paired_median" else f"best of {n}"
        note = (f"median {one.get('fps_per_core_median')} vs {bare.get('fps_per_core_median')} fps per core; the "
                "stage also writes crops and gives frames without a hand a second, padded look"
                if v is not None and stat == "paired_median" else "" if v is not None else "not measured")
        out.append(row("hands", f"hand-landmark throughput, --jobs 1 ({label})", "bare HandLandmarker loop, 1 process",
                       v, f">= {aim}x", _check(v, lambda x: x >= aim), note))
    v = _get(d, "ratios", "throughput_jobs1_vs_bare", "cpu")
    out.append(row("hands", "hand-landmark frames per CPU second, --jobs 1", "bare HandLandmarker loop, 1 process",
                   v, f">= {aim}x", _check(v, lambda x: x >= aim),
                   f"{one.get('frames_per_cpu_s')} vs {bare.get('frames_per_cpu_s')}; steadier than wall time on a "
                   f"busy machine (load {_get(d, 'machine', 'loadavg_at_end', 0)})" if v is not None else "not measured"))
    for stat in ("paired_median", "best_of"):
        v = _get(d, "ratios", "speedup_jobs1_to_jobs2", stat)
        label = "paired median" if stat == "paired_median" else f"best of {n}"
        out.append(row("hands", f"hand-landmark speed-up 1 -> 2 jobs ({label})", "--jobs 1", v, "informational",
                       None, "" if v is not None else "not measured"))
    found = _get(d, "found") or {}
    if not found:
        out.append(missing("hands", "frames with a hand found", "no second look (retry_pad=0)", "informational"))
    for ds, groups in found.items():
        for g, r in groups.items():
            if ds.endswith("massey") and g == "all" or ds.endswith("junaid") and g != "all":
                continue  # massey per person, junaid as a whole
            w, wo = r["with_second_look"], r["without_second_look"]
            what = ds.replace("asl-letters-", "") + ("" if g == "all" else f" {g}")
            v = w["frames_with_a_hand"] / wo["frames_with_a_hand"] if wo["frames_with_a_hand"] else None
            out.append(row("hands", f"frames with a hand found ({what})", "no second look (retry_pad=0)", v,
                           "informational", None,
                           f"{w['frames_with_a_hand']:.1%} vs {wo['frames_with_a_hand']:.1%} of {r['frames']} "
                           f"frames; clips with a hand {w['clips_with_a_hand']:.1%} vs {wo['clips_with_a_hand']:.1%} "
                           f"of {r['clips']}"))
    return out


def rows_train(d):
    out = []
    ext = _get(d, "extraction") or []
    if not ext:
        out.append(missing("train", "feature extraction throughput", "bare forward pass", ">= 0.9x"))
    for e in ext:
        v = e.get("ratio")
        out.append(row("train", f"feature extraction throughput ({e.get('backbone')}, {e.get('image_size')} px)",
                       "bare forward pass, same process", v, ">= 0.9x", _check(v, lambda x: x >= 0.9),
                       f"median of per-round paired ratios; median fps {e.get('pipeline_fps', 0):.1f} vs "
                       f"{e.get('bare_forward_fps', 0):.1f}"))
    h = _get(d, "head_vs_end_to_end")
    v = _get(h, "end_to_end_epoch_over_head_epoch")
    if v is None:
        out.append(missing("train", "head epoch on cached features (speed)", "one end-to-end epoch", "informational"))
    else:
        out.append(row("train", "head epoch on cached features (speed)", "one end-to-end epoch", v,
                       "informational", None,
                       f"{h.get('head_s_per_epoch', 0):.3f} s vs {h.get('end_to_end_epoch_s', 0):.2f} s per epoch "
                       f"({h.get('backbone')}, {h.get('image_size')} px, {h.get('frames')} frames)"))
    mem = _get(d, "memory") or []
    if len(mem) < 2:
        out.append(missing("train", "feature-extraction peak memory, larger dataset", "smaller dataset",
                           "no growth (<= 1.05x)"))
    else:
        a, b = mem[0], mem[-1]
        v = b["peak_rss_mb"] / a["peak_rss_mb"] if a.get("peak_rss_mb") else None
        out.append(row("train", f"feature-extraction peak memory, {b['frames']} frames",
                       f"{a['frames']} frames", v, "no growth (<= 1.05x)", _check(v, lambda x: x <= 1.05),
                       f"{b['peak_rss_mb']:.0f} MB vs {a['peak_rss_mb']:.0f} MB"))
    return out


def rows_predict(d):
    out = []
    res = _get(d, "results") or {}
    if not res:
        out.append(missing("predict", "predict: decode time", "model time", "informational"))
        out.append(missing("predict", "live fps", "bare forward pass", "informational"))
    for bb, r in res.items():
        p = r.get("predict", {})
        dec, mod = p.get("decode_s"), p.get("model_s")
        v = dec / mod if dec is not None and mod else None
        out.append(row("predict", f"predict: decode time ({bb})", "model time", v, "informational", None,
                       f"shares of a clip: decode {p.get('share_decode')}, prepare {p.get('share_prepare')}, "
                       f"model {p.get('share_model')}"))
        lv = r.get("live", {})
        v = lv.get("live_fps_share_of_bare_paired")
        out.append(row("predict", f"live fps, end to end ({bb})", "bare forward pass", v, "informational", None,
                       f"{lv.get('live_end_to_end_fps')} vs {lv.get('bare_forward_fps')} fps; "
                       f"real time on 50 fps: {_get(lv, 'realtime_50fps_source', 'fps')} fps"))
    return out


def rows_live_hands(d):
    base = "bare HandLandmarker loop, same frames"
    aim = _get(d, "aims", "live_fps_at_least") or 25
    if not _get(d, "ratios"):
        return [missing("live_hands", "live fps, landmark run, steady state", base, f">= {aim:g} fps"),
                missing("live_hands", "live: window classification per frame", "HandTracker.detect per frame",
                        "informational")]
    out = []
    fps, n = _get(d, "fps") or {}, _get(d, "rounds")
    implied, load = _get(d, "aim_check", "implied_live_steady_fps"), _get(d, "machine", "loadavg_at_end", 0)
    for stat in ("paired_median", "best_of"):
        v = _get(d, "ratios", "steady_state", stat)
        label = "paired median" if stat == "paired_median" else f"best of {n}"
        note = (f"{fps.get('live_steady_median')} vs {fps.get('bare_steady_median')} fps (median) at load {load}; "
                f"ratio x bare best {fps.get('bare_steady_best')} fps = {implied} fps" if stat == "paired_median" else "")
        out.append(row("live_hands", f"live fps, landmark run, steady state ({label})", base, v,
                       f">= {aim:g} fps (ratio x bare fps)", _get(d, "aim_check", "met") if stat == "paired_median"
                       else None, note))
    v = _get(d, "ratios", "whole_run", "paired_median")
    out.append(row("live_hands", f"live fps, landmark run, {_get(d, 'frames_per_run')} frames from the start",
                   base, v, "informational", None,
                   f"{fps.get('live_whole_median')} vs {fps.get('bare_whole_median')} fps; no model call in the "
                   f"first {_get(d, 'window_fill_frames')} frames (the window fills)"))
    ms = _get(d, "split", "ms_per_call_median") or {}
    w, t = ms.get("window_probs"), ms.get("tracker_detect")
    out.append(row("live_hands", "live: window classification per frame", "HandTracker.detect per frame",
                   w / t if w and t else None, "informational", None,
                   f"{w} vs {t} ms; eager Keras call {ms.get('of_which_eager_keras_call')} ms, the same model in a "
                   f"tf.function {ms.get('same_model_in_tf_function')} ms; SQLite row {ms.get('sqlite_row')} ms"))
    return out


def rows_scaling(d):
    out = []
    stages = _get(d, "stages") or {}
    if not stages:
        out.append(missing("scaling", "growth exponent, 1x -> 4x data", "linear (1.0)", "<= 1.0 + noise"))
    sig = _get(d, "data", "signers") or []
    order = ["fetch", "extract", "train"]
    for st, s in sorted(stages.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99):
        aim = s.get("aim_exponent_at_most", 1.15)
        for k, label in (("work_s", "time (run)"), ("wall_s", "time (process)"), ("peak_rss_mb", "peak memory")):
            v = _get(s, "exponents", k, "1x_4x")
            a, b = _get(s, "sizes", "1x", k), _get(s, "sizes", "4x", k)
            unit = "MB" if k == "peak_rss_mb" else "s"
            out.append(row("scaling", f"{st}: {label} growth exponent, 1x -> 4x", "linear (1.0)", v,
                           f"<= {aim:.2f}", _check(v, lambda x: x <= aim),
                           f"{a} -> {b} {unit} at {sig[0] if sig else '?'} -> {sig[-1] if sig else '?'} signers"))
    return out


def rows_demo(d):
    out = []
    profile = _get(d, "profiles", "default", "variants") or {}
    base = profile.get("demo")
    if not base:
        return [missing("demo", "clip top-1 on unseen signers", "the demo's settings", "well above chance")]
    chance = base["chance_top1"]
    n = len(base["runs"])
    out.append(row("demo", "clip top-1 on unseen signers (default demo)", f"chance ({chance:.3f})",
                   base["clip_top1_mean"] / chance, ">= 3x chance", _check(base["clip_top1_min"] / chance, lambda x: x >= 3),
                   f"mean {base['clip_top1_mean']:.3f}, min {base['clip_top1_min']:.3f}, max "
                   f"{base['clip_top1_max']:.3f} over {n} training seeds, {base['n_test_clips']} test clips"))
    for variant, label in (("colour", "the demo with --colour"), ("mobilenet_v2", "the demo with MobileNetV2")):
        v = profile.get(variant)
        if v:
            out.append(row("demo", f"clip top-1: {label}", "the demo's settings", v["top1_ratio_vs_demo"], "< 1x (the demo's choice holds)",
                           _check(v["top1_ratio_vs_demo"], lambda x: x < 1),
                           f"{v['clip_top1_mean']:.3f} vs {base['clip_top1_mean']:.3f} on the same data"))
    small = _get(d, "profiles", "small", "variants", "demo")
    if small:
        out.append(row("demo", "clip top-1 on unseen signers (--size small)", f"chance ({small['chance_top1']:.3f})",
                       small["clip_top1_mean"] / small["chance_top1"], ">= 2x chance (the test's bar)",
                       _check(small["clip_top1_min"] / small["chance_top1"], lambda x: x >= 2 - 1e-9),
                       f"mean {small['clip_top1_mean']:.3f}, min {small['clip_top1_min']:.3f} over "
                       f"{len(small['runs'])} seeds, {small['n_test_clips']} test clips"))
    return out


def rows_inputs(d):
    """Each input's clip top-1 on people the model never saw, against frames through InceptionV3."""
    summary = _get(d, "summary") or {}
    if not summary:
        return [missing("inputs", "clip top-1, landmarks, unseen people", "frames, InceptionV3 (the default)", "> 1x")]
    out = []
    labels = {"landmarks": "landmarks", "hands_inception": "hand crops, InceptionV3",
              "frames_small_cnn": "frames, small_cnn"}
    for dataset, by_model in summary.items():
        # the default model where it was measured, else the best frame model (leave-one-out ran only that)
        base_name, base = (("frames_inception", "frames, InceptionV3 (the default)") if "frames_inception" in by_model
                           else ("frames_small_cnn", "frames, small_cnn"))
        ref = _get(by_model, base_name, "mean_top1")
        for name, label in labels.items():
            s = by_model.get(name)
            if not s or name == base_name:
                continue
            ratio = s["mean_top1"] / ref if ref else None
            out.append(row("inputs", f"clip top-1, {label}, {dataset}", base if ref else "not measured", ratio,
                           "> 1x for landmarks" if name == "landmarks" else "informational",
                           _check(ratio, lambda x: x > 1) if name == "landmarks" and ref else None,
                           f"mean {s['mean_top1']:.3f}, worst {s['worst_top1']:.3f} over {s['folds']} fold(s)"
                           + (f"; baseline {ref:.3f}" if ref else "")))
    return out


def rows_annotate(d):
    """Proposed clip times against the typed ones: overlap, time per video second, and what training on them costs."""
    results = _get(d, "results") or {}
    if not results:
        return [missing("annotate", "signs found (IoU >= 0.5)", "typed clip times", ">= 0.9")]
    out = []
    for dataset, methods in results.items():
        for method, r in methods.items():
            if method == "train":
                diff = r.get("difference")
                out.append(row("annotate", f"{dataset}: clip top-1, trained on proposed times", "trained on typed times",
                               r["proposed_mean_top1"] / r["true_mean_top1"] if r.get("true_mean_top1") else None,
                               ">= 0.95x", _check(diff, lambda x: x >= -0.05 * r["true_mean_top1"]),
                               f"{r['proposed_mean_top1']:.3f} vs {r['true_mean_top1']:.3f} over {len(r['seeds'])} seeds"))
                continue
            sc, t = r["score"], r["time"]
            out.append(row("annotate", f"{dataset}, {method}: signs found (IoU >= 0.5)", "typed clip times",
                           sc["iou_ge_0.5"], "informational", None,
                           f"{sc['signs']} signs, {sc['misses']} missed, median start error {sc['median_start_err_s']} s"))
            out.append(row("annotate", f"{dataset}, {method}: time per video second (warm)", "the video's length",
                           t["warm_wall_ratio"], "< 1x (faster than real time)", _check(t["warm_wall_ratio"], lambda x: x < 1),
                           f"{t['warm_wall_s']} s for {t['video_seconds']} s of video; cold {t['cold_wall_s']} s"))
    return out


BUILDERS = {"cut": rows_cut, "extract": rows_extract, "hands": rows_hands, "train": rows_train,
            "predict": rows_predict, "live_hands": rows_live_hands, "scaling": rows_scaling, "demo": rows_demo,
            "inputs": rows_inputs, "annotate": rows_annotate}


def _fmt_ratio(r):
    if r["ratio"] is None:
        return "—" if r["note"] != "not measured" else "not measured"
    v = r["ratio"]
    if "overhead" in r["measure"]:
        return f"{v:+.0%}"
    if "exponent" in r["measure"]:
        return f"{v:.2f}"
    return f"{v:.2f}x"


def _fmt_met(m):
    return {True: "yes", False: "NO", None: "—"}[m]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", action="store_true", help="run the benchmark scripts first (slow: many minutes)")
    ap.add_argument("--only", nargs="+", choices=NAMES, metavar="NAME", help=f"only these: {', '.join(NAMES)}")
    a = ap.parse_args(argv)
    names = [n for n in NAMES if not a.only or n in a.only]

    ran = {}
    if a.run:
        for n in names:
            cmd = [sys.executable, str(HERE / f"bench_{n}.py")]
            print(f"== running {' '.join(cmd)}", flush=True)
            t0 = time.time()
            rc = subprocess.run(cmd).returncode
            ran[n] = {"exit_code": rc, "seconds": round(time.time() - t0, 1)}
            if rc:
                print(f"!! bench_{n}.py exited {rc}; its old results (if any) are still shown", flush=True)

    rows, sources = [], {}
    for n in names:
        f = RESULTS / f"{n}.json"
        if not f.exists():
            sources[n] = None
            rows += BUILDERS[n]({})
            continue
        d = json.loads(f.read_text())
        sources[n] = {"file": str(f.relative_to(HERE.parent)),
                      "modified": time.strftime("%Y-%m-%d %H:%M", time.localtime(f.stat().st_mtime)),
                      "command": d.get("command")}
        rows += BUILDERS[n](d)

    now = time.strftime("%Y-%m-%d %H:%M %Z")
    load = [round(x, 2) for x in os.getloadavg()]
    machine = (f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()} "
               f"{platform.machine()}; load average at collection {load[0]} (a shared machine: "
               f"compare the ratios, not the absolute times)")
    summary = {"date": now, "machine": machine, "sources": sources, "ran": ran, "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    head = ("benchmark", "measured", "baseline", "ratio", "aim", "met", "note")
    md = [f"Benchmarks, {now}. {machine}.", "",
          "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        cells = (r["bench"], r["measure"], r["baseline"], _fmt_ratio(r), r["aim"], _fmt_met(r["met"]), r["note"])
        md.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    src = ", ".join(f"{n}: {s['modified']}" if s else f"{n}: not measured" for n, s in sources.items())
    md += ["", f"Result files (last written): {src}. Regenerate with `python benchmarks/run_all.py [--run]`."]
    (RESULTS / "summary.md").write_text("\n".join(md) + "\n")

    widths = [10, 58, 34, 13, 21, 4]
    print(" ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("-" * (sum(widths) + len(widths)))
    for r in rows:
        cells = (r["bench"], r["measure"], r["baseline"], _fmt_ratio(r), r["aim"], _fmt_met(r["met"]))
        print(" ".join(str(c)[:w].ljust(w) for c, w in zip(cells, widths)))
    print(f"\n{machine}\nwrote {RESULTS / 'summary.json'} and {RESULTS / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
