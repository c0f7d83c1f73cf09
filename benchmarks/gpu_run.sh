#!/bin/bash
# The device run, on a machine with a GPU and torch but no network to install dldiy: GPU parity and
# placement through the real dldiy check and grade (benchmarks/gpu_checks.py), the device tests, and a
# full validate with parity on CUDA; and the sandbox's confinement tests, whose cgroup v2 cases need a v2
# machine (this one is). Logs go to $OUT (default /tmp/devout). T1-T3: each step's timeout.
cd "$(dirname "$0")/.."  # the checkout, with dldiy/ given its three sub-packages (no install needed there)
for p in cli graders exercises; do ln -sfn ../$p dldiy/$p; done
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/devout}; mkdir -p $OUT
{ date; nvidia-smi -L; nproc; python3 -c 'import torch,sys;print(sys.version, torch.__version__, torch.cuda.is_available())'
  python3 -c 'import nbformat, click, rich, sklearn, matplotlib, packaging, hypothesis, pytest; print("deps ok")'
  stat -fc %T /sys/fs/cgroup; id; git rev-parse --short HEAD 2>/dev/null; } 2>&1 | tee $OUT/env.log
start=$(date +%s)
timeout ${T1:-230} python3 benchmarks/gpu_checks.py --out $OUT 2>&1 | tee $OUT/gpu_checks.log
echo "gpu_checks: $(( $(date +%s) - start )) s"
timeout ${T2:-150} python3 -m pytest -q -rs -p no:cacheprovider -n 8 tests/test_device_checks.py tests/test_elsewhere.py \
  tests/test_sandbox_confinement.py 2>&1 | tail -25 | tee $OUT/tests.log
echo "tests: $(( $(date +%s) - start )) s"
timeout ${T3:-200} python3 -m dldiy.cli validate --jobs 14 2>&1 | tee $OUT/validate.log | tail -40
echo "validate: $(( $(date +%s) - start )) s"
