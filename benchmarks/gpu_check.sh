#!/usr/bin/env bash
# The GPU check, one prepared script for a lent GPU machine (about 6 minutes on one H100; the real weights
# cannot travel, so the weights are random): a LLaMA-2-7B-architecture LLaRA encoder in the released
# checkpoints' layout, in bf16,
#   1. bench_encode.py: LlaraEncoder vs the model-card loop on 256 SciFact passages <= 512 tokens (tokens/s,
#      fraction of the GPU's bf16 matmul peak, cosine distance to float32);
#   2. bench_finetune.py: LoRA (the reference's r 64, alpha 16, dropout 0.1) fine-tuning steps with gradient
#      checkpointing in bf16 (8 queries x 8 passages of 512 tokens: step time, tokens/s, peak GPU memory).
# Here first: `make gpu-files` (the LLaMA-2 tokenizer and 600 SciFact passages into .gpu/, git-ignored).
# On the device (python3 there has torch, transformers, peft): carry [".gpu"], command
#   set -o pipefail; bash benchmarks/gpu_check.sh 2>&1 | tee $OUT/gpu_check.log
# ARCH=tiny DEVICE=cpu runs the same steps on a tiny model (the test suite does, as a smoke test, with small
# shapes: FT_BATCH, FT_GROUP, FT_LEN, DOCS, and PEAK_N for the matmul peak, slow in bf16 without native bf16).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
FILES=${FILES:-.gpu}
WORK=${WORK:-$(mktemp -d /tmp/llara-gpu-check.XXXXXX)}
trap 'rm -rf "$WORK"' EXIT  # the 7B model's 13 GB, also when a step fails
ARCH=${ARCH:-llama2-7b}
DEVICE=${DEVICE:-cuda}
DOCS=${DOCS:-256}
DTYPE=${DTYPE:-bfloat16}
FT_BATCH=${FT_BATCH:-8} FT_GROUP=${FT_GROUP:-8} FT_LEN=${FT_LEN:-512}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
for f in "$FILES/corpus.jsonl" "$FILES/llama2-llara/tokenizer.model"; do
  [[ -f $f ]] || { echo "gpu_check: $f missing: run \`make gpu-files\` here and carry .gpu"; exit 1; }
done
date -u +"gpu_check: %Y-%m-%dT%H:%MZ, arch $ARCH on $DEVICE"
[[ $DEVICE == cuda ]] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
# every package the steps import, checked before the 13 GB model is written
$PY -c "import accelerate, google.protobuf, numpy, safetensors, sentencepiece, torch, transformers, peft
print('torch', torch.__version__, '| transformers', transformers.__version__, '| peft', peft.__version__)"
SECONDS=0
$PY benchmarks/random_model.py --arch "$ARCH" --tokenizer "$FILES/llama2-llara" --output "$WORK/model" \
  --spec "$WORK/encoder.json" --device "$DEVICE" --dtype "$DTYPE"
echo "gpu_check: model written in ${SECONDS} s"
$PY benchmarks/bench_encode.py --corpus "$FILES/corpus.jsonl" --encoder "$WORK/encoder.json" --device "$DEVICE" \
  --dtype "$DTYPE" --num-docs "$DOCS" --batch-size 64 --max-length 512 ${PEAK_N:+--peak-size "$PEAK_N"}
echo "gpu_check: encoding benchmark done at ${SECONDS} s"
$PY benchmarks/bench_finetune.py --corpus "$FILES/corpus.jsonl" --model "$WORK/encoder.json" --device "$DEVICE" \
  --dtype "$DTYPE" --modes bf16 --lora --lora-r 64 --lora-alpha 16 --lora-dropout 0.1 --gradient-checkpointing \
  --batch "$FT_BATCH" --group "$FT_GROUP" --query-max-len 64 --passage-max-len "$FT_LEN" --steps 3
echo "gpu_check: done in ${SECONDS} s"
