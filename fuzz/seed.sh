#!/usr/bin/env bash
# Seeds the fuzz corpora from the repository's own files (models, fixtures, data).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/onnx corpus/safetensors corpus/npy corpus/digits corpus/image
cp ../models/*.onnx ../tests/fixtures/onnx/exported/*.onnx ../tests/fixtures/onnx/real/*.onnx ../tests/fixtures/onnx/patterns/*.onnx corpus/onnx/
# the safetensors target reads "JSON then weights", split at a position given by byte 0
for arch in ../models/*.json; do
  w="${arch%.json}.safetensors"
  [ -f "$w" ] || continue
  python3 - "$arch" "$w" > "corpus/safetensors/$(basename "${arch%.json}")" <<'PY'
import sys
j = open(sys.argv[1], 'rb').read(); w = open(sys.argv[2], 'rb').read()
total = 1 + len(j) + len(w)
b = max(1, min(255, (len(j) + 1) * 256 // total + 1))
sys.stdout.buffer.write(bytes([b]) + j + w)
PY
done
cp ../data/digits_test.bin corpus/digits/
cp ../tests/fixtures/images/photo.png ../tests/fixtures/images/photo.jpg ../examples/data/seven.png ../cli/tests/data/seven_56x70.jpg corpus/image/
echo "seeded: $(ls corpus/onnx | wc -l) onnx, $(ls corpus/safetensors | wc -l) safetensors, $(ls corpus/digits | wc -l) digits, $(ls corpus/image | wc -l) images"
