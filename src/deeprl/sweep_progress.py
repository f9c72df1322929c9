"""A sweep's progress lines, as a Ray Tune callback: a module of its own because it imports Ray, which only
a running sweep needs (and Tune pickles the callback with the sweep's state, so it lives at module level)."""

from __future__ import annotations

from typing import Any

from ray.tune import Callback

from deeprl.sweeps import TRIAL_RETRIES, describe_trial

# Whether this sweep prints its trials' lines (`--quiet` does not): read at each line rather than kept by the
# announcer, because a resumed sweep runs the announcer Tune restores from the stopped sweep's state, whose
# choice may have been another.
announcing = True


class TrialAnnouncer(Callback):
    """One line per finished or failed trial: '[3/20] lr=0.001-s2: solved at step 9000 (12.3 s); ...'."""

    def __init__(self, total: int) -> None:
        self.total, self.ended = total, 0

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.ended += 1
        self._say(describe_trial(trial.config["trial"], trial.last_result))

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._say(
            f"{trial.config['trial']['name']}: its process died; it resumes from its newest checkpoint", count=False
        )

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.ended += 1
        self._say(
            f"{trial.config['trial']['name']}: crashed; {TRIAL_RETRIES} restarts did not help (Ray's log: {trial.path})"
        )

    def _say(self, text: str, count: bool = True) -> None:
        if announcing:
            print(f"  [{self.ended}/{self.total}] {text}" if count else f"  {text}", flush=True)
