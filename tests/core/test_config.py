"""Config loading: YAML + dotted overrides, validated, with errors that name file, line and field."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import model_validator

from lmforge.config import Section, load_config
from lmforge.engine import TrainConfig
from lmforge.errors import InputError


class Model(Section):
    depth: int = 4
    arch: str = "llama"


class Cfg(Section):
    model: Model = Model()
    train: TrainConfig = TrainConfig(steps=50, batch_size=4, log_every=5)


def test_overrides_are_typed_and_keep_stage_defaults() -> None:
    cfg = load_config(Cfg, None, ["train.lr=3e-4", "model.depth=6"])
    assert cfg.train.lr == pytest.approx(3e-4) and cfg.model.depth == 6
    # overriding one train key must not reset the stage's other train defaults to TrainConfig's
    assert (cfg.train.steps, cfg.train.batch_size, cfg.train.log_every) == (50, 4, 5)


def test_yaml_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  depth: 3\ntrain:\n  steps: 9\n")
    cfg = load_config(Cfg, path, ["train.steps=11"])
    assert (cfg.model.depth, cfg.train.steps, cfg.train.batch_size) == (3, 11, 4)


def test_unknown_key_suggests_closest(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  depht: 3\n")
    with pytest.raises(InputError) as e:
        load_config(Cfg, path)
    assert str(e.value).startswith(f"{path}:2: field 'model.depht'")
    assert "did you mean 'model.depth'" in str(e.value)
    with pytest.raises(InputError, match=r"command line 'train\.lrr=1'.*did you mean 'train\.lr'"):
        load_config(Cfg, None, ["train.lrr=1"])


def test_wrong_type_names_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  arch: llama\ntrain:\n  steps: many\n")
    with pytest.raises(InputError) as e:
        load_config(Cfg, path)
    assert str(e.value).startswith(f"{path}:4: field 'train.steps'")
    with pytest.raises(InputError, match="field 'train.steps'"):
        load_config(Cfg, None, ["train.steps=abc"])


def test_invalid_yaml_and_non_mapping(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  depth: [1,\n")
    with pytest.raises(InputError, match=r"bad\.yaml:\d+: invalid YAML"):
        load_config(Cfg, bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(InputError, match="must be a mapping"):
        load_config(Cfg, lst)
    with pytest.raises(InputError, match="config file not found"):
        load_config(Cfg, tmp_path / "missing.yaml")


def test_cross_field_validation() -> None:
    with pytest.raises(InputError, match="not a multiple of micro_batch_size"):
        load_config(Cfg, None, ["train.batch_size=6", "train.micro_batch_size=4"])


class Checked(Section):
    train: TrainConfig = TrainConfig()
    objective: str = "clm"

    @model_validator(mode="after")
    def _consistent(self) -> Checked:
        if self.objective == "mlm":
            raise ValueError("objective 'mlm' needs an encoder")
        return self


def test_cross_section_error_is_one_short_line() -> None:
    # the whole config used to follow the message as "(got {...})", and a "Value error, " prefix before it
    with pytest.raises(InputError) as e:
        load_config(Checked, None, ["objective=mlm"])
    assert str(e.value).endswith(": objective 'mlm' needs an encoder")
    assert "Value error" not in str(e.value) and "{" not in str(e.value)
    with pytest.raises(InputError, match=r"train\.steps.*greater than or equal to 1 \(got 0\)"):
        load_config(Checked, None, ["train.steps=0"])


@pytest.mark.parametrize("stage", ["pretrain", "sft", "rm"])
def test_config_path_that_is_a_folder_is_one_line_and_exit_2(tmp_path: Path, stage: str) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "lmforge", stage, str(tmp_path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip() == f"error: {tmp_path}: config path is a folder, expected a YAML file"
    assert not (tmp_path / "runs").exists()
