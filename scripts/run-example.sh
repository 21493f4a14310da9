#!/usr/bin/env bash
# Builds peftcpp and inspects the bundled example adapter.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh --cli >/dev/null
build/peftcpp inspect examples/tf_llama_lora --tensors
