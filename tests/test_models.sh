#!/bin/sh
# test_models.sh: every shipped model in models/ gives, in ./metastate, the
# figure that scripts/train.py measured with PyTorch and stored in its
# metadata: held-out bits per byte of models/kjv-heldout.txt within 1e-3
# bits, or task accuracy by position bucket within 2e-3
# (scripts/check_models.py).  Exits non-zero on a failure.
set -u
cd "$(dirname "$0")/.."
exec "${PYTHON:-/usr/bin/python3}" scripts/check_models.py --metastate "${METASTATE:-./metastate}"
