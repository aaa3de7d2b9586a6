#!/usr/bin/env bash
# GPU checks for a lent CUDA host (the device tool): gpu tests, the population benchmark with
# CUDA graphs, a single graphed run, 16 study trials packed into one population (the packing of
# sweep.py --members, without Optuna, which the host lacks; ~1 min), and the default preset as one population of 3 seeds whose
# final samples come back for the README's protocol (evaluate them here, with FCD).
#
# Set-up, once, in the repository root (the H200 host has torch and PyG but no RDKit and no
# internet; the tracked tree plus the RDKit wheel just fit the 64 MiB a call may carry, so the
# QM9 cache is rebuilt there, ~10 s on 16 cores):
#   mkdir -p .git/info .gpu/whl && echo /.gpu/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .gpu/whl rdkit
# Run there with carry [".gpu"]:  bash scripts/gpu_check.sh   (results under $OUT)
# Q3_MINUTES (default 9) limits the population run: on an H200 with CUDA graphs the default
# schedule (97,620 steps) needs about 10 minutes (measured: 154-162 steps/s for K = 3).
set -u
O=${OUT:-/tmp/gpuout}; mkdir -p "$O"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .gpu/whl/*.whl || { echo "wheel install failed"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD PY=python3
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
{ nvidia-smi -L; nproc; $PY -c "import sys, torch, rdkit; print(sys.version.split()[0], 'torch',
torch.__version__, torch.cuda.get_device_name(), 'rdkit', rdkit.__version__)"; } > "$O/env.txt" 2>&1
R=/tmp/runs; rm -rf $R; mkdir -p $R
el "gpu tests"
timeout 120 $PY -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py > "$O/pytest_gpu.txt" 2>&1
echo "exit $?" >> "$O/pytest_gpu.txt"; tail -4 "$O/pytest_gpu.txt"
el "encode QM9 once"
timeout 120 $PY scripts/train_qm9.py --preset debug --max-steps 1 --out-dir $R --name warm \
  --device cpu > $R/warm.out 2>&1
el "single run, CUDA graphs, 3000 steps"
timeout 60 $PY scripts/train_qm9.py --device cuda --max-steps 3000 --log-every 300 --eval-every 3000 \
  --eval-samples 500 --ckpt-minutes 0 --no-progress --out-dir $R --name g1 > $R/g1.out 2>&1
echo "exit $?" >> $R/g1.out; tail -3 $R/g1.out
el "population benchmark, CUDA graphs"
timeout 110 $PY scripts/benchmark.py --device cuda --only population --members 1,8,64,512 \
  --repeats 3 --json $R/bench_graphs.json > "$O/bench_graphs.txt" 2>&1
echo "exit $?" >> "$O/bench_graphs.txt"; grep -E "^\||exit|Error|note" "$O/bench_graphs.txt" | tail -14
el "16 study trials packed into one population on the GPU (molgan.sweep.packing; no Optuna there)"
timeout 100 $PY - $R > "$O/pack.txt" 2>&1 <<'PY'
import sys, dataclasses, pathlib
from molgan.sweep.spec import load_spec, resolve
from molgan.sweep.packing import run_pack
root = pathlib.Path(sys.argv[1]) / "gpu-pack"
spec = load_spec({"name": "gpu-pack", "preset": "latent",
                  "fixed": {"max_steps": 2000, "eval_every": 1000, "eval_samples": 500,
                            "device": "cuda"},
                  "grid": {"seed": list(range(8)), "lam": [1.0, 0.9]}})
cfgs = [resolve(spec, p, root / "runs") for p in spec.grid_points]
results = run_pack(cfgs, spec, root)
for cfg, r in zip(cfgs, results):
    print(cfg.seed, cfg.lam, r["member"], r["steps"], round(r["minutes"], 2), r["final"].get("valid"))
PY
echo "exit $?" >> "$O/pack.txt"; tail -6 "$O/pack.txt"
el "default preset, population of 3 (seeds 0-2)"
timeout $(( ${Q3_MINUTES:-9} * 60 + 60 )) $PY scripts/train_qm9.py --device cuda --members 3 --seed 0 \
  --eval-every 32540 --eval-samples 1000 --time-limit ${Q3_MINUTES:-9} --ckpt-minutes 0 \
  --no-progress --out-dir $R --name q3 > $R/q3.out 2>&1; echo "exit $?" >> $R/q3.out
grep -E "note|time limit|done|exit|Error" $R/q3.out | tail -6
for k in 0 1 2; do
  timeout 40 $PY scripts/sample.py --checkpoint $R/q3/ckpt.pt --member $k -n 10000 \
    --seed $((10000 + k)) --out $R/q3_m$k.smi > $R/q3_s$k.out 2>&1
done
$PY - $R > "$O/summary.txt" 2>&1 <<'PY'
import json, sys, pathlib, statistics as st
R = pathlib.Path(sys.argv[1])
for log in sorted(R.glob("*/log.jsonl")):
    recs = [json.loads(l) for l in log.read_text().splitlines() if l.strip()]
    recs = [r for r in recs if "time/it_per_s" in r and r.get("member", 0) == 0]
    if len(recs) < 3:
        continue
    K = json.loads((log.parent / "config.json").read_text()).get("members", 1)
    n = len(recs)
    a = [r["time/it_per_s"] for r in recs[1 : n // 2]] or [recs[0]["time/it_per_s"]]
    b = [r["time/it_per_s"] for r in recs[n // 2 + 1 : -1]] or [recs[-1]["time/it_per_s"]]
    print(f"{log.parent.name:6s} K={K:3d} last step {recs[-1]['step']} steps/s {st.median(a):.1f} / "
          f"{st.median(b):.1f} (halves), member-steps/s {K * st.median(a):.1f} / {K * st.median(b):.1f}")
PY
cat "$O/summary.txt"
tar czf "$O/runs.tgz" -C $R --exclude='*.pt' . 2>/dev/null
el "done"
