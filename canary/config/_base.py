"""Shared machinery of the config models: one base class, two tolerances, readable errors.

Every model validates in one of two modes, chosen by the pydantic validation context:

* strict (the default; our YAML and keyword construction): unknown keys are errors and
  enumerated values must be valid;
* Kayenta (``context={"kayenta": True}``, used by ``CanaryConfig.from_kayenta``): unknown keys
  are dropped silently and Kayenta's own fallbacks apply (section 3 of the judge spec), because
  Kayenta's JSON mapper ignores unknown properties.

Both modes reject wrong types (a quoted "true" is not a boolean, as in Kayenta).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Annotated, Any, ClassVar, Self, TypeVar, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    Strict,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError, core_schema

from canary.errors import ConfigError

KAYENTA = "kayenta"

#: Fields of old Kayenta samples that current Kayenta silently drops.
_OBSOLETE = frozenset({"services", "service", "sumByFields", "aggregationPeriod"})

#: A float that also takes an int (as Kayenta does) but never a string or a boolean.
Number = Annotated[float, Strict()]


def is_kayenta(info: ValidationInfo | None) -> bool:
    """True when validating Kayenta JSON with Kayenta's tolerance."""
    return bool(info is not None and info.context and info.context.get(KAYENTA))


K = TypeVar("K")
V = TypeVar("V")


class FrozenMap(Mapping[K, V]):
    """A read-only, hashable mapping, so frozen models stay immutable all the way down."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[K, V] | Sequence[tuple[K, V]] = ()) -> None:
        self._data: dict[K, V] = dict(data)

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[object], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """pydantic's hook: validate as a dict of the field's key and value types, then freeze.

        Args:
            source: The annotation, e.g. ``FrozenMap[str, float]`` (bare: any keys and values).
            handler: pydantic's schema generator for the dict's own types.

        Returns:
            The core schema: the dict's, deep-frozen after validation, thawed when dumped.
        """
        args = get_args(source)
        key, value = args if len(args) == 2 else (object, object)
        return core_schema.no_info_after_validator_function(
            _deep_frozen,
            # a type built at runtime from the field's own args, not an annotation
            handler.generate_schema(dict[key, value]),  # type: ignore[valid-type]
            serialization=core_schema.plain_serializer_function_ser_schema(thaw),
        )


def _deep_frozen(data: Mapping[object, object]) -> FrozenMap[object, object]:
    """A validated dict as a FrozenMap, its values deep-frozen."""
    return FrozenMap({key: freeze(value) for key, value in data.items()})


def freeze(value: object) -> object:
    """Deep-convert JSON-like data into immutable, hashable equivalents.

    Args:
        value: Parsed JSON or YAML: mappings, lists, tuples, scalars.

    Returns:
        The same data with mappings as FrozenMap and lists as tuples.
    """
    if isinstance(value, Mapping):
        return FrozenMap({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: object) -> object:
    """Inverse of `freeze`: plain dicts and lists, ready for json.dumps.

    Args:
        value: Frozen (or plain) JSON-like data.

    Returns:
        The same data with mappings as dicts and tuples as lists.
    """
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


def choice(value: object, choices: Sequence[str], info: ValidationInfo, fallback: str | None) -> str:
    """Validate an enumerated string: strict mode names the choices, Kayenta mode falls back.

    Args:
        value: The input value.
        choices: The valid strings.
        info: pydantic's validation info (its context picks the mode).
        fallback: What Kayenta mode uses for an unknown string or null (None: no fallback).

    Returns:
        `value` when it is one of `choices`, else (Kayenta mode) `fallback`.

    Raises:
        PydanticCustomError: The value is invalid and there is no fallback.
    """
    if isinstance(value, str) and value in choices:
        return value
    if is_kayenta(info) and fallback is not None and (value is None or isinstance(value, str)):
        return fallback
    raise PydanticCustomError(
        "not_one_of",
        "{value} is not one of {choices}",
        {"value": repr(value), "choices": ", ".join(choices)},
    )


class Model(BaseModel):
    """Frozen, strict about keys unless validating Kayenta JSON."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False
    )
    #: Keys of the input that are accepted besides the fields' names and aliases.
    _extra_keys: ClassVar[frozenset[str]] = frozenset()
    #: The files of this model spell its keys in snake_case (a release spec: `begin_after`),
    #: not as their camelCase aliases (Kayenta's canary configs: `nanStrategy`); the
    #: "allowed here" hint lists the spelling the file uses. Both spellings are accepted.
    _snake_case_keys: ClassVar[bool] = False

    def __init__(self, /, **data: object) -> None:
        """Build the model from keyword arguments (field names or aliases), strictly.

        Raises:
            ConfigError: A value is invalid; the message names the model and field.
        """
        # Keyword construction raises our ConfigError too, never a bare pydantic error.
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error(exc, source=type(self).__name__, data=data) from None

    # Nested validation must not go through this __init__ (it would lose the validation
    # context); pydantic's own RootModel marks its __init__ the same way. (A function takes
    # any attribute at runtime; the checker only knows the declared ones.)
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def model_validate(cls, obj: object, *, source: str | None = None, **kwargs: Any) -> Self:
        """pydantic's model_validate, raising ConfigError (prefixed with `source`) instead.

        Args:
            obj: The data to validate.
            source: What error messages name (a file); the class name when None.
            **kwargs: ``BaseModel.model_validate``'s own options (e.g. ``context``,
                ``{"kayenta": True}`` for Kayenta mode), passed on unchanged.

        Returns:
            The validated model.

        Raises:
            ConfigError: The data is invalid; the message names the source and field.
        """
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise config_error(exc, source=source or cls.__name__, data=obj) from None

    @classmethod
    def known_keys(cls) -> list[str]:
        """The input keys this model accepts, as its files spell them: aliases (or names;
        snake_case names for a model whose files use them, see ``_snake_case_keys``), then
        the extra keys."""
        keys = [_spelled(name, f.alias, snake=cls._snake_case_keys) for name, f in cls.model_fields.items()]
        return keys + sorted(cls._extra_keys)

    @model_validator(mode="before")
    @classmethod
    def _check_keys(cls, data: object, info: ValidationInfo) -> object:
        if not isinstance(data, Mapping):
            return data
        known = (set(cls.known_keys()) | set(cls.model_fields)
                 | {f.alias for f in cls.model_fields.values() if f.alias})  # fmt: skip
        unknown = [k for k in data if k not in known]
        if not unknown:
            return data
        if is_kayenta(info):
            return {k: v for k, v in data.items() if k in known}
        obsolete = [k for k in unknown if k in _OBSOLETE]
        hint = (
            f" ({', '.join(map(repr, obsolete))}: an obsolete Kayenta field that Kayenta"
            " ignores; delete it, or keep the file as .json to have it ignored)"
            if obsolete
            else _did_you_mean(unknown, cls.known_keys())
        )
        raise PydanticCustomError(
            "unknown_key",
            "unknown key{s} {key}; remove {it} or fix the spelling{hint} (allowed here: {allowed})",
            {
                "s": "s" if len(unknown) > 1 else "",
                "it": "them" if len(unknown) > 1 else "it",
                "key": ", ".join(repr(k) for k in unknown),
                "hint": hint,
                "allowed": ", ".join(cls.known_keys()),
            },
        )


def _spelled(name: str, alias: str | None, *, snake: bool) -> str:
    """A field's key as its files spell it: its alias, or (snake) its name where the alias
    is only the camelCase of the name (`beginAfter` -> `begin_after`, `pass` stays)."""
    if alias is None:
        return name
    return name if snake and alias != alias.lower() else alias


def _did_you_mean(unknown: Sequence[object], known: Sequence[str]) -> str:
    """`` (did you mean 'begin_after'?)`` for a key close to a known one, else ""."""
    import difflib

    close = [m for k in unknown if isinstance(k, str) for m in difflib.get_close_matches(k, known, n=1)]
    return f" (did you mean {', '.join(map(repr, close))}?)" if close else ""


_HINTS = {
    "bool_type": "{input!r} is not a boolean; write true or false, without quotes",
    "float_type": "{input!r} is not a number",
    "float_parsing": "{input!r} is not a number",
    "finite_number": "{input!r} is not a finite number",
    "int_type": "{input!r} is not a whole number",
    "string_type": "{input!r} is not a string; quote it",
    "missing": "required key is missing; add it",
    "extra_forbidden": "unknown key; remove it or fix its spelling",
    "model_type": "{input!r} is not a mapping of keys to values",
    "dict_type": "{input!r} is not a mapping of keys to values",
    "tuple_type": "{input!r} is not a list",
}
# Tags of discriminated unions appear in error locations; they are not part of the user's path.
_TAGS = {"prometheus-query", "other-query"}


_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}
_BOUND_KEYS = {
    "greater_than": "gt",
    "greater_than_equal": "ge",
    "less_than": "lt",
    "less_than_equal": "le",
}


def _describe(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind in _BOUNDS:
        limit = error.get("ctx", {}).get(_BOUND_KEYS[kind])
        return f"{error.get('input')!r} is out of range; it must be {_BOUNDS[kind]} {limit}"
    if kind == "string_too_short":
        return "must not be empty"
    hint = _HINTS.get(kind)
    if hint is None:
        return str(error["msg"]).removeprefix("Value error, ")
    return hint.format(input=error.get("input"))


def _where(loc: tuple[int | str, ...], data: object) -> str:
    """'metric 'p99' (metrics[2]): analysisConfigurations.canary.direction' from a loc."""
    loc = tuple(p for p in loc if p not in _TAGS)
    prefix = ""
    if len(loc) >= 2 and loc[0] == "metrics" and isinstance(loc[1], int):
        name = None
        if isinstance(data, Mapping) and isinstance(data.get("metrics"), list | tuple):
            metrics = data["metrics"]
            if loc[1] < len(metrics) and isinstance(metrics[loc[1]], Mapping):
                name = metrics[loc[1]].get("name")
        label = f"metric {name!r} " if isinstance(name, str) else "metric "
        prefix = f"{label}(metrics[{loc[1]}])"
        loc = loc[2:]
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return ": ".join(p for p in (prefix, path) if p)


def config_error(exc: ValidationError, *, source: str, data: object) -> ConfigError:
    """Turn a pydantic error into one ConfigError naming the file, metric and field path.

    Args:
        exc: pydantic's error.
        source: What the message names first (a file or model).
        data: The input, to name a metric by its `name` rather than its index.

    Returns:
        One ConfigError, a line per pydantic error.
    """
    lines = []
    for error in exc.errors():
        where = _where(tuple(error["loc"]), data)
        lines.append(": ".join(p for p in (source, where, _describe(error)) if p))
    return ConfigError("\n".join(lines))


M = TypeVar("M", bound=Model)


def validate(model: type[M], data: object, *, source: str, kayenta: bool) -> M:
    """Validate `data` as `model` in the chosen mode; failures become ConfigError.

    Args:
        model: The model class.
        data: The input.
        source: What error messages name.
        kayenta: Kayenta's tolerance (True) or strict mode (False).

    Returns:
        The validated model.
    """
    return model.model_validate(data, source=source, context={KAYENTA: kayenta})
