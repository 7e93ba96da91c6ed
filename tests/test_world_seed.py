"""`lrmerge study --world-seed K`: the demo study on another world (another BASE), the option of issue #15 item 5."""

import argparse
import json

import pytest

from lrmerge import study
from lrmerge.demo import world_paths
from lrmerge.demo.config import profile_config
from lrmerge.errors import UserError


def test_world_seed_goes_into_the_profiles_source_options():
    options = json.loads(study.world_seed_options("demo", 2))
    assert options == {"world_profile": "demo", "world_seed": 2}
    given = json.loads(study.world_seed_options("quick", 5, '{"world_profile": "quick", "vocab_size": 900}'))
    assert given == {"world_profile": "quick", "vocab_size": 900, "world_seed": 5}  # --set source_options is kept


@pytest.mark.parametrize("profile, seed, message", [
    ("real-cpu", 1, r"--world-seed: profile 'real-cpu' reads 'real-cpu' data, not the demo world"),
    ("demo", -1, r"--world-seed: -1 is negative"),
])
def test_world_seed_refuses_profiles_without_a_world_and_negative_seeds(profile, seed, message):
    with pytest.raises(UserError, match=message):
        study.world_seed_options(profile, seed)


def test_the_cli_flag_reaches_every_stage_as_source_options(monkeypatch, tmp_path):
    seen = {}

    def fake_run_study(languages, profile, stages, root, kernel, overrides, **kwargs):
        seen.update(overrides)
        return []

    monkeypatch.setattr(study, "run_study", fake_run_study)
    parser = argparse.ArgumentParser()
    study.configure_parser(parser)
    args = parser.parse_args(["--profile", "quick", "--world-seed", "3", "--root", str(tmp_path)])
    assert study.run(args) == 0
    assert json.loads(seen["source_options"]) == {"world_profile": "quick", "world_seed": 3}
    args = parser.parse_args(["--profile", "quick", "--root", str(tmp_path)])
    seen.clear()
    study.run(args)
    assert "source_options" not in seen  # without the flag the profile's own options (world 0) stand


@pytest.mark.slow
def test_the_data_stage_builds_and_records_the_other_world(tmp_path):
    root = tmp_path / "runs"
    overrides = {"source_options": study.world_seed_options("quick", 1)}
    results = study.run_study(["tbx"], "quick", ["data"], root, overrides=overrides, log=lambda *_: None)
    assert [r.status for r in results] == ["ran"], [r.message for r in results]
    source = json.loads((root / "tbx" / "data" / "outputs.json").read_text())["source"]
    assert source["extras"]["world_seed"] == 1
    other, world0 = world_paths(profile_config("quick", seed=1), root / "world"), world_paths(profile_config("quick"), root / "world")
    assert source["extras"]["world_root"] == str(other.root) and other.root != world0.root
    assert source["base"].startswith(str(other.root))  # the stages train from world 1's BASE
