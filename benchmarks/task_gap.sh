#!/usr/bin/env bash
# Replaced by `lpm sweep` (docs/sweep.md): does a task punish degenerate cells? DARTS_V2 against a normal cell of 8
# skip_connect (benchmarks/skip8.json: DARTS_V2's reduction cell), trained with `lpm train`'s defaults, over seeds.
#   usage: benchmarks/task_gap.sh OUT [lpm sweep options...]   (e.g. --datasets digits --seeds 0,1,2,3)
exec "${LPM:-.venv/bin/lpm}" sweep --out "${1:?OUT}" --lambda none --references "DARTS_V2,$(dirname "$0")/skip8.json" --datasets textures --seeds 0,1,2 --profiles cifar-b1 --jobs 2 "${@:2}"
