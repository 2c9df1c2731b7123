"""Config loading: strict keys and types, duplicate keys, near-match suggestions, overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from critics.config import ConfigError, apply_overrides, from_dict, load_config, load_yaml
from data_pipelines.registry import Registry

PARTS: Registry = Registry("part")


@PARTS.register("wheel")
@dataclass
class Wheel:
    radius: float = 1.0
    spokes: int = 8


@dataclass
class Optim:
    lr: float = 1e-6
    schedule: Literal["cosine", "linear"] = "cosine"


@dataclass
class Machine:
    parts: list[Wheel] = field(metadata={"registry": PARTS})
    optim: Optim = field(default_factory=Optim)
    name: str = "m"
    tags: list[str] = field(default_factory=list)
    limit: int | None = None


def write(tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_loads_nested_dataclasses_and_registry_choices(tmp_path):
    path = write(tmp_path, "parts: [{name: wheel, radius: 2}, wheel]\noptim: {lr: 3.0e-6}\nlimit: 4\n")
    machine = load_config(Machine, path)
    assert machine.parts == [Wheel(radius=2.0), Wheel()]
    assert machine.optim == Optim(lr=3e-6) and machine.limit == 4


@pytest.mark.parametrize(
    "text, message",
    [
        ("parts: [wheel]\noptim: {lrr: 1}\n", "unknown key 'optim.lrr' (did you mean 'lr'?)"),
        ("parts: [{name: wheel, spoke: 3}]\n", "unknown key 'parts[0].spoke' (did you mean 'spokes'?)"),
        ("parts: [wheal]\n", "unknown part 'wheal' (did you mean 'wheel'?)"),
        ("parts: [wheel]\noptim: {schedule: cosin}\n", "must be one of ['cosine', 'linear']"),
        ("parts: [wheel]\nlimit: many\n", "'limit' should be int, got str"),
        ("parts: [wheel]\ntags: web\n", "'tags' should be a list"),
        ("parts: [{name: wheel, spokes: true}]\n", "'parts[0].spokes' should be int, got bool"),
        ("name: x\n", "missing required key 'parts'"),
    ],
)
def test_errors_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        load_config(Machine, write(tmp_path, text))
    assert message in str(info.value)


def test_duplicate_keys_are_errors_not_silently_dropped(tmp_path):
    path = write(tmp_path, "parts: [wheel]\nname: a\nname: b\n")
    with pytest.raises(ConfigError, match="duplicate key 'name' at line 3"):
        load_yaml(path)


def test_ints_widen_to_floats_but_nothing_else_is_converted():
    assert from_dict(Optim, {"lr": 1}).lr == 1.0
    with pytest.raises(ConfigError, match="'lr' should be float, got str"):
        from_dict(Optim, {"lr": "1e-6"})


def test_overrides_parse_values_as_yaml_and_reach_nested_keys(tmp_path):
    path = write(tmp_path, "parts: [wheel]\noptim: {lr: 1.0e-6}\n")
    machine = load_config(Machine, path, ["optim.lr=2.0e-5", "limit=null", "tags=[a, b]"])
    assert machine.optim.lr == 2e-5 and machine.limit is None and machine.tags == ["a", "b"]
    with pytest.raises(ConfigError, match="unknown key 'optim.l'"):
        load_config(Machine, path, ["optim.l=3"])
    with pytest.raises(ConfigError, match="not of the form"):
        apply_overrides({}, ["novalue"])


@dataclass
class Knobs:
    group: int = 8
    temperature: float = 1.0


@dataclass
class RecipeWithOwnDefaults:
    knobs: Knobs = field(default_factory=lambda: Knobs(group=4))


def test_a_section_keeps_the_recipe_defaults_yaml_does_not_set():
    assert from_dict(RecipeWithOwnDefaults, {"knobs": {"temperature": 0.7}}).knobs == Knobs(group=4, temperature=0.7)
    assert from_dict(RecipeWithOwnDefaults, {}).knobs == Knobs(group=4)
    with pytest.raises(ConfigError, match="unknown key 'knobs.groups'"):
        from_dict(RecipeWithOwnDefaults, {"knobs": {"groups": 2}})
