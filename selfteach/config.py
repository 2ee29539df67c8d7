"""The study's config: validated against the JSON schema, defaults filled in, errors in one line.

The workflow calls `validate` when it loads, so a mistyped key fails before any job starts. The schema
is the one source of every default: the fine-tuning recipe, the command line and the sampling backends
read theirs through `defaults`, so the workflow and a command behave the same.
"""

from __future__ import annotations

import copy
import difflib
import functools
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from selfteach.terms import HUMAN_DATA

SCHEMA_FILE = "config.schema.yaml"


@functools.cache
def _parsed_schema() -> dict:
    return yaml.safe_load(resources.files("selfteach.schemas").joinpath(SCHEMA_FILE).read_text())


def schema() -> dict:
    """The schema, parsed once (modules read their defaults from it at import: 21 ms a parse); a copy."""
    return copy.deepcopy(_parsed_schema())


def defaults(section: str | None = None) -> dict:
    """The schema's default of every key, of the whole study or of one section (e.g. "finetune")."""
    filled = {}
    _fill_defaults(filled, schema())
    return filled if section is None else filled[section]


def model_defaults() -> dict:
    """The schema's default of every key of a model entry (`models.<name>`), e.g. `max_context`."""
    entry = _parsed_schema()["properties"]["models"]["additionalProperties"]["properties"]
    return {key: copy.deepcopy(spec["default"]) for key, spec in entry.items() if "default" in spec}


def _fill_defaults(config: dict, node: dict) -> None:
    for key, spec in node.get("properties", {}).items():
        if key not in config and "default" in spec:
            config[key] = copy.deepcopy(spec["default"])
        if isinstance(config.get(key), dict) and "properties" in spec:
            _fill_defaults(config[key], spec)


def _describe(error: jsonschema.ValidationError, node: dict) -> str:
    where = ".".join(str(part) for part in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        prefix = "" if where == "(top level)" else where + "."
        hints = [
            f"{prefix}{key} (did you mean {close[0]}?)" if (close := difflib.get_close_matches(key, known, 1)) else prefix + key
            for key in unknown
        ]
        return f"unknown key {', '.join(hints)}; known keys here: {', '.join(known)}"
    return f"{where}: {error.message}"


def validate(config: dict, source: str = "config") -> dict:
    """Return the config with defaults filled in, or raise ValueError naming the offending key."""
    config = copy.deepcopy(config or {})
    spec = schema()
    _fill_defaults(config, spec)
    errors = sorted(jsonschema.Draft7Validator(spec).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ValueError(f"{source}: {_describe(errors[0], spec)}")
    _check_references(config, source)
    return config


def _check_references(config: dict, source: str) -> None:
    """Names used by the steps must be models defined under `models`, of a kind that step can use."""
    models = config["models"]
    for name, spec in models.items():
        needed = {"hub": "id", "local": "path", "openai": "base_url"}.get(spec["source"])
        if needed and needed not in spec:
            raise ValueError(f"{source}: models.{name}: source {spec['source']} needs the key {needed!r}")
    if HUMAN_DATA in models:
        raise ValueError(f"{source}: models: {HUMAN_DATA!r} names the human-data control; call the model otherwise")
    for section, key in (("generate", "generators"), ("finetune", "students")):
        for name in config[section][key]:
            if name not in models and not (key == "generators" and name == HUMAN_DATA):
                raise ValueError(f"{source}: {section}.{key}: {name!r} is not defined under models")
    for name in config["self_improvers"] or []:
        if name not in config["generate"]["generators"] or name not in config["finetune"]["students"]:
            raise ValueError(f"{source}: self_improvers: {name!r} must be in generate.generators and finetune.students")
    for name in config["finetune"]["students"]:
        if models[name]["source"] == "openai":
            raise ValueError(f"{source}: finetune.students: {name!r} is an API model and cannot be fine-tuned")
    if isinstance(config["finetune"]["accelerate"], dict):
        for name in config["finetune"]["accelerate"]:
            if name not in config["finetune"]["students"]:
                raise ValueError(f"{source}: finetune.accelerate: {name!r} is not one of finetune.students")


def accelerate_config(finetune: dict, student: str) -> str | None:
    """The accelerate config (accelerate/<name>.yaml) that fine-tunes `student` on `finetune.gpus` GPUs, or
    None to train in the job's own process (one device)."""
    choice = finetune["accelerate"]
    if isinstance(choice, dict):
        choice = choice.get(student, "auto")
    if choice == "auto":
        choice = "multi_gpu" if finetune["gpus"] > 1 else None
    return None if choice in (None, "cpu", "single_gpu") and finetune["gpus"] <= 1 else choice


def load(path: str | Path) -> dict:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from None
    return validate(raw, source=str(path))
