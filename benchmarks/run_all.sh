#!/bin/sh
# Every benchmark behind BENCHMARKS.md, one after the other on a quiet machine, tables into results/.
# Needs the [dev] install (make test creates it) and ../shared beside the repository. About 30 minutes here.
set -e
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
D=../shared/data
mkdir -p results
$PY benchmarks/network_speed.py --threads 2 --repeats 200 | tee results/network_speed.md
$PY benchmarks/compare_models.py --models personseg-default personseg-fast \
    --data $D/ccp $D/viton $D/fasseg_heads $D/coco_train --mend-labels $D/viton --val-fraction 0.1 \
    --threads 2 --worst 20 --worst-dir results/worst --markdown results/compare.md --json results/compare.json
$PY benchmarks/sample_sheet.py --inputs ../shared/samples --frames 2 --output results/samples.jpg
$PY benchmarks/photo_bench.py --threads 2 --repeats 10 --folder-images 1000 \
    --markdown results/photo_bench.md --json results/photo_bench.json
$PY benchmarks/video_bench.py --frames 60 --threads 2 | tee results/video_bench.md
$PY benchmarks/soak.py --requests 1000 --clients 8 | tee results/soak.md
$PY benchmarks/video_bench.py --frames 60 --threads 2 --foreground none --skip-stability | tee results/video_bench_nofg.md
$PY benchmarks/train_throughput.py --config configs/personseg-default.yaml --models deeplabv3plus:efficientnet_lite0 \
    --batch-size 8 --input-size 256 --threads 2 --workers 1 --steps 20 --rounds 2 | tee results/train_throughput.md
$PY benchmarks/train_throughput.py --config configs/personseg-default.yaml --models unet \
    --batch-size 8 --input-size 256 --threads 2 --workers 1 --steps 4 --rounds 2 | tee -a results/train_throughput.md
