#!/usr/bin/env bash
# Installs the Debian packages meshlm needs to build, test and run its demo.
# Idempotent: packages already present are skipped, and apt-get is not called at all
# when nothing is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libdnnl-dev ocl-icd-opencl-dev          # oneDNN (its CMake config needs OpenCL headers)
  openmpi-bin libopenmpi-dev              # processes and CPU collectives (data parallelism)
  libcli11-dev libtomlplusplus-dev nlohmann-json3-dev
  libsentencepiece-dev sentencepiece        # bpe tokenizer
  libicu-dev                              # Unicode classes for GPT-2's pre-tokenizer
  libxxhash-dev                           # checksums of checkpoint files (XXH3)
  libgtest-dev libgmock-dev libbenchmark-dev
  python3-torch python3-numpy             # test-time reference only
  libopenblas0-openmp                     # PyTorch's best set-up for the speed comparison
  bible-kjv                               # real text for the demo and the learning test
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
else
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
"$(dirname "${BASH_SOURCE[0]}")/fetch-gpt2-tokenizer.sh" >/dev/null  # GPT-2 tokenizer files + test reference
