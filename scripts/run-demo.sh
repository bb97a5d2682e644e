#!/usr/bin/env bash
# make run: seekserve on the built-in demo model (tiny-v3: DeepSeek-V3's architecture scaled
# down, random weights, the real DeepSeek-V3 tokenizer), made on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/seekserve}
cache=${SEEKSERVE_CACHE:-${HOME:-/tmp}/.cache/seekserve}
model="$cache/tiny-v3"
if [[ ! -f "$model/model.safetensors" ]]; then
  echo "== making the demo model in $model"
  "$bin" make-model --preset tiny-v3 --out "$model"
fi

echo "== seekserve inspect $model"
"$bin" inspect "$model" | head -n 48
echo "   ..."

prompt="Why is the sky blue? 天空为什么是蓝色的？"
echo
echo "== seekserve tokenize -m $model \"$prompt\""
"$bin" tokenize -m "$model" "$prompt"

messages=$(mktemp)
trap 'rm -f "$messages"' EXIT
printf '[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"%s"}]' "$prompt" \
  > "$messages"
echo
echo "== seekserve chat-template --template deepseek-r1 --add-generation-prompt (one system + one user message)"
"$bin" chat-template --template deepseek-r1 --messages-json "$messages" --add-generation-prompt
echo
echo "== seekserve generate -m $model --chat -p \"$prompt\" -n 32 --temp 0.7 --seed 1"
echo "   (random weights: the text is noise; the point is the pipeline and its speed)"
"$bin" generate -m "$model" --chat -p "$prompt" -n 32 --temp 0.7 --seed 1
