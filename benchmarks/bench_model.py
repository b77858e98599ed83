"""Speed and memory of the MSMMT network on CPU: training step and inference.

For each config (``demo``, ``cpu-small``, ``paper``) it times a training step
(forward + loss + backward) and the inference latency per clip, and records the
peak memory of training, for several ways of executing the same network (all give
the same result, see ``ViTBackbone.set_execution``):

* ``pack``: the scales of a backbone run as one packed sequence with a
  block-diagonal attention mask (``packed``) or as one pass per scale (``separate``);
* ``last``: the last block is evaluated for the class tokens only (``cls``) or for
  every token (``all``);
* ``attention``: the fused kernel where the probabilities are not needed
  (``fused``) or explicit attention everywhere (``explicit``).

The default is packed / cls / fused; the baseline is three separate plain passes
(separate / all). Every (config, variant) runs in its own subprocess, so its peak
memory (peak RSS minus the RSS before the first step) is its own; the variants of a
config run in turns, ``--rounds`` times, so a busy machine slows them alike. Times
are medians over all rounds of wall time and of the process's CPU time. On a shared
machine keep ``--threads 1`` (the default) and read the CPU-time columns: with
several threads a descheduled thread stalls the others, which favours whichever
variant launches fewer operations.

With ``--compile-configs`` it also compares ``torch.compile`` (inductor, CPU)
with eager execution of a whole training step (forward + loss + backward + AdamW
step) of the default variant, in ``results/model_compile.csv``: the first step
(compilation, with an empty inductor cache), the steady-state step, the first step
of a partial batch (a new batch size) and of an evaluation pass (eval mode,
no_grad), and the first steps of a *second* model instance, which is what every
new LOSO fold pays. ``fold_overhead_s`` is that second instance's extra time over
steady state (its first full step, partial step and evaluation) minus eager's, and
``breakeven_steps`` the training steps after which the faster steps repay it (0:
nothing to repay, a new instance reuses the compiled code; timing noise can make
the overhead slightly negative). The one-off cost of a process is in the ``*_first_s``
columns of the first instance. A
compilation error is recorded in the ``error`` column.

    .venv/bin/python benchmarks/bench_model.py                  # all three configs
    .venv/bin/python benchmarks/bench_model.py --configs demo --rounds 5
    .venv/bin/python benchmarks/bench_model.py --configs demo cpu-small \
        --compile-configs demo cpu-small    # + compiled vs eager (minutes per config)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

VARIANTS = {
    "packed/cls/fused": dict(pack_scales=True, last_block_cls_only=True, fused_attn=True),
    "separate/all/fused": dict(pack_scales=False, last_block_cls_only=False, fused_attn=True),
    "packed/all/fused": dict(pack_scales=True, last_block_cls_only=False, fused_attn=True),
    "separate/cls/fused": dict(pack_scales=False, last_block_cls_only=True, fused_attn=True),
    "packed/cls/explicit": dict(pack_scales=True, last_block_cls_only=True, fused_attn=False),
    "separate/all/explicit": dict(pack_scales=False, last_block_cls_only=False, fused_attn=False),
}
"""pack / last block / attention -> ``set_execution`` options; the first is the default."""
PAPER_VARIANTS = ["packed/cls/fused", "separate/all/fused", "packed/cls/explicit", "separate/all/explicit"]
"""The paper config (ViT-B/16 x 2) is slow on CPU: only the default and the baseline."""
BATCH = {"paper": 2}
"""Training batch per config (default: the preset's train.batch_size)."""
STEPS = {"paper": 2}
"""Timed training steps per round (default 5)."""
COMPILE_STEPS = 15
"""Timed steady-state training steps of the eager / compiled comparison."""


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def worker(config: str, variant: str, batch: int, steps: int, threads: int) -> dict:
    """One (config, variant): warm-up step, ``steps`` timed steps, inference latency."""
    import torch

    from msmmt.config import load_config
    from msmmt.model import build_model
    from msmmt.model.losses import msmmt_loss

    if threads:
        torch.set_num_threads(threads)
    cfg = load_config(config)
    model_cfg = cfg.model.model_copy(update={"pretrained": None})
    torch.manual_seed(0)
    model = build_model(model_cfg).train()
    model.set_execution(**VARIANTS[variant])
    size = model_cfg.img_size
    texture, motion = torch.rand(batch, 3, size, size), torch.rand(batch, 3, size, size)
    labels = torch.arange(batch) % model_cfg.num_classes

    def step() -> None:
        loss, _ = msmmt_loss(model(texture, motion), labels, cfg.loss)
        model.zero_grad(set_to_none=True)
        loss.backward()

    rss_before = _rss_mb()
    step()  # warm-up
    times, cpu_times = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model.eval()
    one_t, one_m = texture[:1], motion[:1]
    latencies = []
    with torch.no_grad():
        model(one_t, one_m)
        for _ in range(max(steps, 3)):
            t0 = time.perf_counter()
            model(one_t, one_m)
            latencies.append(time.perf_counter() - t0)
    return {
        "step_s": times,
        "step_cpu_s": cpu_times,
        "infer_s": latencies,
        "peak_mb": peak,
        "train_mb": peak - rss_before,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "threads": torch.get_num_threads(),
    }


def run_config(config: str, rounds: int, threads: int) -> list[dict]:
    from msmmt.config import load_config

    batch = BATCH.get(config, load_config(config).train.batch_size)
    steps = STEPS.get(config, 5)
    variants = PAPER_VARIANTS if config == "paper" else list(VARIANTS)
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(rounds):
        for variant in variants:
            cmd = [sys.executable, __file__, "--worker", config, variant, str(batch), str(steps)]
            cmd += ["--threads", str(threads)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            results[variant].append(json.loads(out.strip().splitlines()[-1]))
            print(f"  {config} {variant} round {r + 1}/{rounds} done", file=sys.stderr)
    def median(key: str) -> dict[str, float]:
        return {v: statistics.median(t for res in rs for t in res[key]) for v, rs in results.items()}

    wall, cpu = median("step_s"), median("step_cpu_s")
    load = os.getloadavg()[0]  # 1-minute load: other processes on the machine
    rows = []
    for variant, rs in results.items():
        step_s = wall[variant]
        pack, last, attention = variant.split("/")
        baseline = f"separate/all/{attention}"
        rows.append(
            {
                "config": config,
                "pack": pack,
                "last_block": last,
                "attention": attention,
                "batch": batch,
                "threads": rs[0]["threads"],
                "params_m": rs[0]["params_m"],
                "train_step_ms": 1000 * step_s,
                "train_samples_s": batch / step_s,
                "speedup": wall[baseline] / step_s,
                "train_step_cpu_ms": 1000 * cpu[variant],
                "cpu_speedup": cpu[baseline] / cpu[variant],
                "peak_rss_mb": max(res["peak_mb"] for res in rs),
                "train_mem_mb": max(res["train_mb"] for res in rs),
                "infer_ms_per_clip": 1000
                * statistics.median(t for res in rs for t in res["infer_s"]),
                "rounds": rounds,
                "load_avg": load,
            }
        )
    return rows


def compile_worker(config: str, mode: str, batch: int, steps: int, threads: int) -> dict:
    """Eager or ``torch.compile``d training steps (forward, loss, backward, AdamW step).

    Times, in order: the first two steps of a model instance, ``steps`` steady steps,
    the first step of a partial batch, a first and a second evaluation pass, then the
    first full step, partial step and evaluation of a second, new model instance.
    """
    import torch
    from torch._dynamo.utils import counters

    from msmmt.config import load_config
    from msmmt.model import build_model
    from msmmt.model.losses import msmmt_loss

    if threads:
        torch.set_num_threads(threads)
    cfg = load_config(config)
    model_cfg = cfg.model.model_copy(update={"pretrained": None})
    size = model_cfg.img_size
    partial = max(2, batch // 2 - 1)  # a batch size the model has not seen
    torch.manual_seed(0)
    texture, motion = torch.rand(batch, 3, size, size), torch.rand(batch, 3, size, size)
    labels = torch.arange(batch) % model_cfg.num_classes

    def instance():
        model = build_model(model_cfg).train()
        net = torch.compile(model) if mode == "compile" else model
        return net, torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)

    def timed(fn) -> tuple[float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        return time.perf_counter() - t0, time.process_time() - c0

    def step(net, optimizer, n=batch) -> None:
        loss, _ = msmmt_loss(net(texture[:n], motion[:n]), labels[:n], cfg.loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def evaluate(net) -> None:
        net.eval()
        with torch.no_grad():
            net(texture, motion)
        net.train()

    net, optimizer = instance()
    first = timed(lambda: step(net, optimizer))[0]
    second = timed(lambda: step(net, optimizer))[0]
    steady = [timed(lambda: step(net, optimizer)) for _ in range(steps)]
    partial_first = timed(lambda: step(net, optimizer, partial))[0]
    eval_first = timed(lambda: evaluate(net))[0]
    eval_steady = timed(lambda: evaluate(net))[0]
    frames = counters["frames"]["ok"]
    net, optimizer = instance()
    new_first = timed(lambda: step(net, optimizer))[0]
    new_partial = timed(lambda: step(net, optimizer, partial))[0]
    new_eval = timed(lambda: evaluate(net))[0]
    return {
        "first_step_s": first,
        "second_step_s": second,
        "step_s": statistics.median(t for t, _ in steady),
        "step_cpu_s": statistics.median(c for _, c in steady),
        "partial_first_s": partial_first,
        "eval_first_s": eval_first,
        "eval_s": eval_steady,
        "new_instance_s": [new_first, new_partial, new_eval],
        "frames_first": frames,
        "frames_second": counters["frames"]["ok"] - frames,
        "partial": partial,
        "threads": torch.get_num_threads(),
    }


def run_compile(config: str, threads: int) -> list[dict]:
    """Eager and compiled training steps of ``config``, each in its own subprocess."""
    from msmmt.config import load_config

    batch = BATCH.get(config, load_config(config).train.batch_size)
    results: dict[str, dict] = {}
    for mode in ("eager", "compile"):
        cmd = [sys.executable, __file__, "--compile-worker", config, mode, str(batch)]
        cmd += [str(COMPILE_STEPS), "--threads", str(threads)]
        with tempfile.TemporaryDirectory() as cache:  # a cold inductor cache
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        last = proc.stdout.strip().splitlines()[-1:] or ["{}"]
        results[mode] = json.loads(last[0])
        if proc.returncode != 0:
            results[mode]["error"] = (proc.stderr.strip().splitlines() or ["?"])[-1][:300]
        print(f"  {config} {mode} done", file=sys.stderr)
    eager = results["eager"]

    def overhead(res: dict) -> float:  # a new instance's first steps beyond steady state
        return sum(res["new_instance_s"]) - 2 * res["step_s"] - res["eval_s"]

    rows = []
    for mode, res in results.items():
        row: dict[str, object] = {"config": config, "mode": mode, "batch": batch}
        if "step_s" in res and "step_s" in eager:
            extra = overhead(res) - overhead(eager)  # per fold, compared with eager
            gain = eager["step_s"] - res["step_s"]  # per training step
            row.update(
                threads=res["threads"],
                first_step_s=res["first_step_s"],
                second_step_s=res["second_step_s"],
                train_step_ms=1000 * res["step_s"],
                train_step_cpu_ms=1000 * res["step_cpu_s"],
                speedup=eager["step_s"] / res["step_s"],
                partial_batch=res["partial"],
                partial_first_s=res["partial_first_s"],
                eval_first_s=res["eval_first_s"],
                eval_ms=1000 * res["eval_s"],
                new_instance_first_s=res["new_instance_s"][0],
                new_instance_partial_s=res["new_instance_s"][1],
                new_instance_eval_s=res["new_instance_s"][2],
                frames_compiled=res["frames_first"],
                frames_new_instance=res["frames_second"],
                fold_overhead_s=extra,
                breakeven_steps=max(extra, 0.0) / gain if gain > 0 else None,
            )
        row["error"] = res.get("error", "")
        row["load_avg"] = os.getloadavg()[0]
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["demo", "cpu-small", "paper"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--compile-configs",
        nargs="*",
        default=[],
        help="configs (of --configs) whose training step is also timed compiled vs eager "
        "(each compilation takes minutes on a 2-core CPU)",
    )
    parser.add_argument("--worker", nargs=4, metavar=("CONFIG", "VARIANT", "BATCH", "STEPS"))
    parser.add_argument("--compile-worker", nargs=4, metavar=("CONFIG", "MODE", "BATCH", "STEPS"))
    args = parser.parse_args()
    if args.worker:
        config, variant, batch, steps = args.worker
        print(json.dumps(worker(config, variant, int(batch), int(steps), args.threads)))
        return
    if args.compile_worker:
        config, mode, batch, steps = args.compile_worker
        try:
            result = compile_worker(config, mode, int(batch), int(steps), args.threads)
        except Exception as err:  # recorded in the row: compilation may fail on a machine
            traceback.print_exc()
            print(json.dumps({"error": f"{type(err).__name__}: {err}"[:300]}))
            return
        print(json.dumps(result))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import record

    rows = []
    for config in args.configs:
        rows += run_config(config, args.rounds if config != "paper" else 1, args.threads)
    record("model", rows)
    compile_rows = []
    for config in args.configs:
        if config in args.compile_configs:
            compile_rows += run_compile(config, args.threads)
    if compile_rows:
        record("model_compile", compile_rows)


if __name__ == "__main__":
    main()
