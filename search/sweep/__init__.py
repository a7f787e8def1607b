"""`lpm sweep`: grids of latency-aware searches, each trained and measured, resumable, local or on Ray.

`grid` (axes, trials, grid.json), `trial` (folder, lock, state, steps), `runner` (local runner and the driver),
`ray_runner` (steps as Ray tasks), `results` (the table), `report` (Pareto table, picture, claims), `command`.
"""
