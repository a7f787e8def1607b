#!/usr/bin/env bash
# Replaced by `lpm sweep` (docs/sweep.md): normal-cell against whole-network predictor at relative λ, on digits with
# the demo's search settings, every found genotype's whole network measured on small-b1-both in its store's scale.
#   usage: benchmarks/whole_network_sweep.sh OUT [lpm sweep options...]   (e.g. --lambda 0,1 --seeds 0,1,2,3,4,5)
exec "${LPM:-.venv/bin/lpm}" sweep --out "${1:?OUT}" --datasets digits --predictors ort-xeon-small,ort-cpu-small-both --relative --lambda 0,0.5 --epochs 6 --max-steps 0 --profiles small-b1-both --db small-b1-both=bundled:ort-cpu-small-b1-both --references none --jobs 2 "${@:2}"
