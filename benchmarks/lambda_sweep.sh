#!/usr/bin/env bash
# Replaced by `lpm sweep` (docs/sweep.md): the λ sweep of BENCHMARKS.md ("Search") on textures with the shipped
# `ort-cpu`, each found genotype trained and measured (normal cell in the bundled store's scale, and the whole network).
#   usage: benchmarks/lambda_sweep.sh OUT [lpm sweep options...]   e.g. benchmarks/lambda_sweep.sh runs/sweep --jobs 2
exec "${LPM:-.venv/bin/lpm}" sweep --out "${1:?OUT}" --db cifar-b1=bundled:ort-cpu-cifar-b1 "${@:2}"
