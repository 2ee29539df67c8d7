"""The config schema is the one source of every default: the recipe, the command line, the backends and the
steps' own keyword defaults agree with it, so `selfteach <step>` behaves like the workflow with an empty config."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from selfteach import cli, config, dataset, puzzle_filter, verify
from selfteach.finetune_config import WORKFLOW_KEYS, FinetuneConfig, study_settings
from selfteach.metrics import DEFAULT_RESAMPLES
from selfteach.sampling import load_backend
from selfteach.sampling.hf import HFBackend
from selfteach.sampling.openai_http import OpenAIBackend
from selfteach.sampling.vllm_backend import VLLMBackend

SCHEMA = config.defaults()


def keyword_defaults(function) -> dict:
    return {
        name: p.default for name, p in inspect.signature(function).parameters.items() if p.default is not p.empty
    }


def parse(*argv: str):
    return cli.build_parser().parse_args(list(argv))


def test_finetune_config_has_every_training_key_of_the_schema_with_its_default():
    fields = {field.name: field.default for field in dataclasses.fields(FinetuneConfig)}
    training = {k: v for k, v in SCHEMA["finetune"].items() if k not in WORKFLOW_KEYS}
    assert fields == {**training, "seed": SCHEMA["seed"]}
    assert FinetuneConfig.from_dict(study_settings(config.validate({}))) == FinetuneConfig()


def test_finetune_flags_are_the_config_fields_and_default_to_the_config():
    args = parse("finetune", "--model", "m", "--train", "t", "--out-root", "o", "--checkpoint-dir", "c", "--log-csv", "l")
    assert cli.finetune_config(args) == FinetuneConfig()
    for field in dataclasses.fields(FinetuneConfig):
        assert hasattr(args, field.name), field.name
    args = parse(
        "finetune", "--model", "m", "--train", "t", "--out-root", "o", "--checkpoint-dir", "c", "--log-csv", "l",
        "--config-json", '{"lr": 0.5, "epochs": 3}', "--lr", "0.25", "--gradient-checkpointing",
    )  # fmt: skip
    assert cli.finetune_config(args) == FinetuneConfig(lr=0.25, epochs=3, gradient_checkpointing=True)


def test_verify_command_and_verifier_default_to_the_verify_section():
    args = parse("verify", "in.jsonl", "out.jsonl")
    section = SCHEMA["verify"]
    assert (args.timeout, args.workers, args.imports, args.python) == (
        section["timeout"], section["workers"], section["imports"], section["python"],
    )  # fmt: skip
    assert args.no_sandbox is not section["sandbox"]
    signature = keyword_defaults(verify.Verifier.__init__)
    assert {key: signature[key] for key in section} == section


@pytest.mark.parametrize("command", ["sample", "serve"])
def test_backend_flags_default_to_the_sampling_section(command):
    args = parse(command, *(["in.jsonl", "out.jsonl"] if command == "sample" else []), "--model", "m")
    for key in cli.BACKEND_KEYS:
        assert getattr(args, key) == SCHEMA["sampling"][key], key


def test_sample_command_samples_like_the_evaluation():
    args = parse("sample", "in.jsonl", "out.jsonl", "--model", "m")
    for key in ("temperature", "top_p", "max_new_tokens"):
        assert getattr(args, key) == SCHEMA["evaluate"][key], key
    assert args.seed == SCHEMA["seed"]


def test_backends_default_to_the_sampling_section():
    sampling = SCHEMA["sampling"]
    hf = keyword_defaults(HFBackend.__init__)
    assert {key: hf[key] for key in ("dtype", "device", "batch_size")} == {
        key: sampling[key] for key in ("dtype", "device", "batch_size")
    }
    assert keyword_defaults(VLLMBackend.__init__)["dtype"] == sampling["dtype"]
    http = keyword_defaults(OpenAIBackend.__init__)
    assert (http["concurrency"], http["max_retries"]) == (sampling["concurrency"], sampling["max_retries"])
    client = load_backend({"source": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"}, {})
    assert (client.concurrency, client.max_retries) == (sampling["concurrency"], sampling["max_retries"])


def test_an_endpoint_model_entry_takes_its_context_from_the_config_else_the_schema():
    spec = {"source": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"}
    assert load_backend(spec, {}).max_context == config.model_defaults()["max_context"]
    models = {"smollm2-135m": {"source": "embedded"}, "api-model": {**spec, "max_context": 4096}}
    study = config.validate({"models": models})
    assert load_backend(study["models"]["api-model"], study["sampling"]).max_context == 4096
    with pytest.raises(ValueError, match="max_context"):
        config.validate({"models": {**models, "api-model": {**spec, "max_context": 0}}})


def test_steps_default_to_their_sections():
    assert keyword_defaults(puzzle_filter.filter_puzzles)["skip_trivial_rate"] == SCHEMA["filter"]["skip_trivial_rate"]
    build = keyword_defaults(dataset.build_dataset)
    assert build["max_per_puzzle"] == SCHEMA["dataset"]["max_solutions_per_puzzle"]
    assert build["max_examples"] == SCHEMA["dataset"]["max_examples"]
    assert DEFAULT_RESAMPLES == SCHEMA["evaluate"]["bootstrap"]


def test_step_commands_default_to_their_sections():
    filt = parse("filter-puzzles", "in.jsonl", "out.jsonl")
    assert (filt.skip_trivial_rate, filt.seed) == (SCHEMA["filter"]["skip_trivial_rate"], SCHEMA["seed"])
    build = parse("build-dataset", "--samples", "s", "--text", "t", "--examples", "e")
    assert (build.max_per_puzzle, build.max_examples, build.seed) == (
        SCHEMA["dataset"]["max_solutions_per_puzzle"], SCHEMA["dataset"]["max_examples"], SCHEMA["seed"],
    )  # fmt: skip
    assert build.variant == SCHEMA["dataset"]["variants"][0]
    evaluate = parse("evaluate", "--puzzles", "p", "--samples", "s", "--verdicts", "v", "--out", "o")
    assert (evaluate.resamples, evaluate.seed) == (SCHEMA["evaluate"]["bootstrap"], SCHEMA["seed"])
