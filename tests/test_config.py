"""The config schema: defaults fill in, mistakes fail in one line that names the key."""

from pathlib import Path

import pytest
import yaml

from selfteach import config

REPO = Path(__file__).resolve().parents[1]


def test_defaults_fill_every_section():
    study = config.validate({})
    assert study["generate"]["generators"] == ["smollm2-135m"]
    assert study["verify"]["imports"] == "paper"
    assert study["filter"]["skip_trivial_rate"] == 0.05
    assert study["evaluate"]["temperature"] == 0.8


@pytest.mark.parametrize("name", ["config.yaml", "config.cpu-study.yaml", "config.paper.yaml"])
def test_shipped_configs_are_valid(name):
    study = config.load(REPO / name)
    assert study["rounds"] >= 1


def test_paper_config_has_the_papers_numbers():
    study = config.load(REPO / "config.paper.yaml")
    generate = study["generate"]
    assert generate["shards"] * generate["prompts"] * generate["per_prompt"] == 256_000
    assert study["solve"]["attempts"] == 100 and study["evaluate"]["attempts"] == 100
    assert study["finetune"]["epochs"] == 10 and study["rounds"] == 5
    assert study["finetune"]["lr"] == 5.0e-6 and study["finetune"]["block_size"] == 1024
    assert study["dataset"]["max_examples"] == 950_511


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"generate": {"tempreature": 0.5}}, "unknown key generate.tempreature (did you mean temperature?)"),
        ({"sedd": 1}, "unknown key sedd (did you mean seed?)"),
        ({"solve": {"attempts": "many"}}, "solve.attempts: 'many' is not of type 'integer'"),
        ({"verify": {"imports": "some"}}, "verify.imports"),
        ({"finetune": {"students": ["nope"]}}, "finetune.students: 'nope' is not defined under models"),
        ({"models": {"m": {"source": "hub"}}}, "models.m: source hub needs the key 'id'"),
        ({"finetune": {"accelerate": {"other": "fsdp"}}}, "finetune.accelerate: 'other' is not one of finetune.students"),
        ({"finetune": {"accelerate": "deepspeed"}}, "finetune.accelerate"),
        ({"finetune": {"students": ["p3-train"]}}, "finetune.students: 'p3-train' is not defined under models"),
        ({"models": {"p3-train": {"source": "embedded"}}}, "models: 'p3-train' names the human-data control"),
    ],
)
def test_mistakes_name_the_key(bad, message):
    with pytest.raises(ValueError) as err:
        config.validate(bad)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_human_data_control_is_a_generator_without_a_model():
    study = config.validate({"generate": {"generators": ["smollm2-135m", "p3-train"]}})
    assert study["generate"]["generators"] == ["smollm2-135m", "p3-train"]
    assert "p3-train" not in study["models"]


def test_api_models_cannot_be_students():
    bad = {
        "models": {"api": {"source": "openai", "base_url": "http://127.0.0.1:1/v1"}},
        "generate": {"generators": ["api"]},
        "finetune": {"students": ["api"]},
    }
    with pytest.raises(ValueError, match="API model"):
        config.validate(bad)


def test_load_names_the_file(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"rounds": 0}))
    with pytest.raises(ValueError, match=f"{path}: rounds: 0 is less than the minimum of 1"):
        config.load(path)


def test_accelerate_config_per_student_or_for_all():
    paper = config.load(REPO / "config.paper.yaml")["finetune"]
    assert [config.accelerate_config(paper, s) for s in paper["students"]] == ["multi_gpu", "fsdp", "fsdp"]
    assert config.accelerate_config({"gpus": 4, "accelerate": {"big": "fsdp"}}, "small") == "multi_gpu"  # auto
    assert config.accelerate_config({"gpus": 1, "accelerate": "auto"}, "m") is None  # in the job's process
    assert config.accelerate_config({"gpus": 1, "accelerate": "single_gpu"}, "m") is None
    assert config.accelerate_config({"gpus": 2, "accelerate": "fsdp"}, "m") == "fsdp"
