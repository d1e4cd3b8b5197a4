"""Keys renamed when the stages came to share one piece still load from files and the command line."""
from __future__ import annotations

from pathlib import Path

from lmforge.config import dump_config, load_config
from lmforge.stages.rm import RMConfig


def _rm(tmp_path: Path, model_lines: str, *overrides: str) -> RMConfig:
    path = tmp_path / "rm.yaml"
    path.write_text(f"model:\n  path: some/model\n{model_lines}data:\n  train: [a.jsonl]\n")
    return load_config(RMConfig, path, list(overrides))


def test_forward_tokens_is_read_as_chunk_tokens(tmp_path: Path) -> None:
    assert _rm(tmp_path, "").model.chunk_tokens == 1024
    cfg = _rm(tmp_path, "  forward_tokens: 4096\n")
    assert cfg.model.chunk_tokens == 4096
    assert "forward_tokens" not in dump_config(cfg)  # saved under the one name
    assert _rm(tmp_path, "", "model.forward_tokens=null").model.chunk_tokens is None
    assert _rm(tmp_path, "", "model.chunk_tokens=2048").model.chunk_tokens == 2048
