"""Configs: YAML files validated by pydantic schemas, with ``a.b=value`` overrides from the command line.

A stage declares its schema as nested :class:`Section` models. :func:`load_config` reads the YAML file,
applies overrides, and validates. Every problem becomes an :class:`InputError` that names the file, the line
and the dotted field, and suggests the closest valid key for a typo.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from .errors import InputError

T = TypeVar("T", bound=BaseModel)


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())
    # older key names a section still accepts, {old: new}: written files keep working when a key is renamed
    # (config files and overrides are checked against them too); what is saved uses the new names
    renamed_keys: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _old_key_names(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(k in data for k in cls.renamed_keys):
            data = dict(data)
            for old, new in cls.renamed_keys.items():
                if old in data:
                    cls.from_old_key(data, old, new, data.pop(old))
        return data

    @classmethod
    def from_old_key(cls, data: dict[str, Any], old: str, new: str, value: Any) -> None:
        """Put an old key's ``value`` in ``data`` under its new name (a section may translate the value)."""
        data[new] = value


# --------------------------------------------------------------------------- key paths and suggestions

def _model_fields(schema: type[BaseModel]) -> dict[str, Any]:
    return dict(schema.model_fields)


def _sub_schema(annotation: Any) -> type[BaseModel] | None:
    """The Section class behind a field annotation (``Foo``, ``Foo | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def valid_keys(schema: type[BaseModel], prefix: str = "") -> list[str]:
    """All dotted keys a schema accepts, sections included."""
    keys = []
    for name, field in _model_fields(schema).items():
        dotted = prefix + name
        keys.append(dotted)
        sub = _sub_schema(field.annotation)
        if sub is not None:
            keys.extend(valid_keys(sub, dotted + "."))
    return keys


def suggest(key: str, schema: type[BaseModel]) -> str:
    options = valid_keys(schema)
    close = difflib.get_close_matches(key, options, n=1, cutoff=0.5)
    if not close:  # compare the last component too: "lrr" -> "train.lr"
        last = key.rsplit(".", 1)[-1]
        by_last = {k.rsplit(".", 1)[-1]: k for k in options}
        hit = difflib.get_close_matches(last, list(by_last), n=1, cutoff=0.6)
        close = [by_last[hit[0]]] if hit else []
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_key(key: str, schema: type[BaseModel]) -> None:
    node: type[BaseModel] | None = schema
    walked: list[str] = []
    for part in key.split("."):
        if node is None:  # below a plain field: only free-form mappings (e.g. mixture weights) go deeper
            return
        fields = _model_fields(node)
        part = getattr(node, "renamed_keys", {}).get(part, part)
        if part not in fields:
            where = ".".join(walked) or "the top level"
            raise InputError(f"unknown key '{key}'{suggest(key, schema)}; "
                             f"valid keys under {where}: {', '.join(sorted(fields)) or 'none'}",
                             field=key)
        walked.append(part)
        annotation = fields[part].annotation
        node = _sub_schema(annotation)
        if node is None and getattr(annotation, "__origin__", None) is not dict and annotation is not dict:
            node = None
            if key.count(".") >= len(walked):
                raise InputError(f"'{'.'.join(walked)}' is a value, not a section; cannot set '{key}'",
                                 field=key)


# --------------------------------------------------------------------------- YAML with line numbers

def _line_index(node: yaml.Node, prefix: str = "", out: dict[str, int] | None = None) -> dict[str, int]:
    """Map dotted keys to 1-based line numbers from a composed YAML node tree."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            dotted = prefix + str(k.value)
            out[dotted] = k.start_mark.line + 1
            _line_index(v, dotted + ".", out)
    return out


def read_yaml(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("config file not found", file=path) from None
    except IsADirectoryError:
        raise InputError("config path is a folder, expected a YAML file", file=path) from None
    except OSError as e:  # permissions, a FIFO that errors, ...
        raise InputError(f"cannot read config ({e.strerror or e})", file=path) from None
    except UnicodeDecodeError as e:
        raise InputError(f"config is not UTF-8 text ({e.reason} at byte {e.start})", file=path) from None
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else None
        raise InputError(f"invalid YAML: {e.problem}", file=path, line=line) from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise InputError("a config must be a mapping of keys to values", file=path, line=1)
    return data, _line_index(node)


# --------------------------------------------------------------------------- overrides

def parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise InputError(f"override '{text}' is not of the form key=value", file="command line")
    key, raw = text.split("=", 1)
    key = key.strip().lstrip("-")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for p in parts[:-1]:
        child = node.get(p)
        if not isinstance(child, dict):
            child = {}
            node[p] = child
        node = child
    node[parts[-1]] = value


def split_args(args: list[str] | None) -> tuple[Path | None, list[str]]:
    """``[CONFIG.yaml] [key=value ...]`` -> (config path or None, overrides)."""
    args = list(args or [])
    if args and "=" not in args[0]:
        return Path(args[0]), args[1:]
    return None, args


# --------------------------------------------------------------------------- loading

def load_config(schema: type[T], path: Path | None = None, overrides: list[str] | None = None,
                base: dict[str, Any] | None = None) -> T:
    """Read ``path`` (optional), apply ``overrides`` (``a.b=value``), validate against ``schema``."""
    data: dict[str, Any] = _merge(schema_defaults(schema), base or {})
    lines: dict[str, int] = {}
    source = str(path) if path else ("command line" if overrides else "defaults")
    if path is not None:
        file_data, lines = read_yaml(path)
        data = _merge(data, file_data)
        for key in _flat_keys(file_data):
            _check_key_at(key, schema, path, lines)
    override_keys: dict[str, str] = {}
    for text in overrides or []:
        key, value = parse_override(text)
        try:
            _check_key(key, schema)
        except InputError as e:
            raise InputError(e.message, file=f"command line '{text}'", field=key) from None
        set_dotted(data, key, value)
        override_keys[key] = text
    try:
        return schema.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")  # our own validators' messages are whole sentences
        # a section's cross-field check gets the whole section as its input: naming it would dump the config
        if "input" in err and err["type"] not in ("missing", "value_error"):
            msg += f" (got {err['input']!r})"
        if key in override_keys or any(key.startswith(k + ".") for k in override_keys):
            raise InputError(msg, file=f"command line '{override_keys.get(key, key)}'", field=key) from None
        raise InputError(msg, file=source, line=lines.get(key), field=key) from None


def schema_defaults(schema: type[BaseModel]) -> dict[str, Any]:
    """The schema's own defaults as plain data, so overriding one nested key keeps the section's other
    stage-specific defaults (a stage may default ``train`` to a TrainConfig with its own batch size)."""
    out: dict[str, Any] = {}
    for name, field in schema.model_fields.items():
        if field.is_required():
            continue
        value = field.get_default(call_default_factory=True)
        out[name] = value.model_dump(mode="python") if isinstance(value, BaseModel) else value
    return out


def _check_key_at(key: str, schema: type[BaseModel], path: Path, lines: dict[str, int]) -> None:
    try:
        _check_key(key, schema)
    except InputError as e:
        raise InputError(e.message, file=path, line=lines.get(key), field=key) from None


def _flat_keys(data: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k, v in data.items():
        dotted = prefix + str(k)
        if isinstance(v, dict) and v:
            keys.append(dotted)
            keys.extend(_flat_keys(v, dotted + "."))
        else:
            keys.append(dotted)
    return keys


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def dump_config(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
