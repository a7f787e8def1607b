"""Profiling a backend into a measurement store: the measurer, the shared driver, the pilot, `lpm profile`'s
run (here, local workers, Ray) and `lpm recheck`. The public names other modules use are re-exported here."""

from lpm_zoo.backends.profiling.drive import drive
from lpm_zoo.backends.profiling.measurer import Measurer, baseline_of, model_for, normalize
from lpm_zoo.backends.profiling.pilot import DEFAULT_STATISTIC, choose_statistic
from lpm_zoo.backends.profiling.recheck import held_out_keys, recheck_plan, run_recheck
from lpm_zoo.backends.profiling.run import plan, run_profile

__all__ = ["DEFAULT_STATISTIC", "Measurer", "baseline_of", "choose_statistic", "drive", "held_out_keys", "model_for",
           "normalize", "plan", "recheck_plan", "run_recheck", "run_profile"]
