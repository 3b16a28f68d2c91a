"""Typed task arguments: checked at enqueue, converted from JSON to the annotated types by workers.

A task's parameter annotations (after its context) say what it receives. Jobs travel as JSON,
so a `datetime`, `UUID`, `Decimal`, enum, msgspec Struct or dataclass arrives as a string or an
object; msgspec converts it back to the annotated type before the task is called. Parameters
without an annotation, or annotated `Any` or `object`, take whatever JSON gives, as do tasks
without annotations (they pay nothing for this module).
"""

from __future__ import annotations

import inspect
import logging
import math
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

import msgspec

__all__ = ["ArgumentTypes", "find_non_finite", "may_be_non_finite"]

log = logging.getLogger("aioq")

# Exact types whose values JSON gives as they are: a value of exactly this type needs no conversion.
_PLAIN: Final = frozenset({str, int, float, bool, list, dict})
_UNCHECKED: Final = (Any, object, inspect.Parameter.empty)
_POSITIONAL: Final = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_NAMED: Final = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_REPR_CHARS: Final = 60
_MSGPACK: Final = msgspec.msgpack.Encoder()
# MessagePack keeps floats as float64 (0xcb and 8 big-endian bytes); all exponent bits set is
# NaN or an infinity. The same bytes inside a string or bytes value only cost a closer look.
_PACKED_NON_FINITE: Final = re.compile(rb"\xcb[\x7f\xff][\xf0-\xff]")


class _Param:
    """One annotated parameter and how to convert a value to its type."""

    __slots__ = ("hint", "name", "plain")

    def __init__(self, name: str, hint: Any) -> None:
        self.name = name
        self.hint = hint
        self.plain = any(hint is t for t in _PLAIN)

    def from_json(self, value: Any, where: str) -> Any:
        """`value` as decoded from JSON, converted to the annotated type."""
        if self.plain and type(value) is self.hint:
            return value
        try:
            return msgspec.convert(value, self.hint, str_keys=True)
        except Exception as e:  # also what a __post_init__ raises, or RecursionError
            raise TypeError(self._message(where, value, e)) from None

    def check(self, value: Any, where: str) -> None:
        """Raise `TypeError` unless `value`, once sent as JSON, converts to the annotated type."""
        if self.plain and type(value) is self.hint:
            return
        try:
            as_json = msgspec.to_builtins(value, str_keys=True)
        except (TypeError, msgspec.EncodeError):
            return  # encoding the job reports it, naming the type
        try:
            msgspec.convert(as_json, self.hint, str_keys=True)
        except Exception as e:
            raise TypeError(self._message(where, value, e)) from None

    def _message(self, where: str, value: Any, error: Exception) -> str:
        shown = repr(value)
        if len(shown) > _REPR_CHARS:
            shown = shown[: _REPR_CHARS - 3] + "..."
        detail = str(error).replace("`$", f"`{where}")
        if not isinstance(error, msgspec.ValidationError):
            detail = f"{type(error).__name__}: {detail}"
        return f"argument {where!r} must be {_type_name(self.hint)}, got {shown}: {detail}"


class _Shape:
    """How to convert the positional arguments of a call with a given number of them.

    One msgspec conversion of the whole list to a tuple type costs much less than one per
    argument; the tuple sits in an array-like Struct, whose type msgspec compiles once.
    """

    __slots__ = ("plain", "wrapper")

    def __init__(self, params: Sequence[_Param | None]) -> None:
        hints = tuple(Any if p is None else p.hint for p in params)
        self.wrapper: Any = msgspec.defstruct(
            "Positional", [("args", types.GenericAlias(tuple, hints))], array_like=True
        )
        # When every checked position has a type JSON gives as is, a type check is enough.
        checked = [(i, p.hint) for i, p in enumerate(params) if p is not None]
        self.plain = tuple(checked) if all(p.plain for p in params if p is not None) else None


# Calls with more positional arguments than this (through *args) convert one by one.
_MAX_SHAPE: Final = 32


class ArgumentTypes:
    """The annotated parameters of one task (its context excluded)."""

    __slots__ = ("_shapes", "named", "positional", "var_keyword", "var_positional")

    def __init__(
        self,
        positional: Sequence[_Param | None],
        var_positional: _Param | None,
        named: Mapping[str, _Param | None],
        var_keyword: _Param | None,
    ) -> None:
        self.positional = tuple(positional)
        self.var_positional = var_positional
        self.named = dict(named)
        self.var_keyword = var_keyword
        self._shapes: dict[int, _Shape | None] = {}

    @classmethod
    def of(
        cls, fn: Callable[..., Any], signature: inspect.Signature, task: str
    ) -> ArgumentTypes | None:
        """The argument types of `fn` (`signature` without its context); None if none is checked."""
        hints, unresolved = _resolved_hints(fn)
        positional: list[_Param | None] = []
        named: dict[str, _Param | None] = {}
        var_positional = var_keyword = None
        for param in signature.parameters.values():
            if param.name in unresolved:
                log.warning(
                    "task %s: parameter %r is not type-checked: its annotation %r cannot be "
                    "resolved (%s)",
                    task,
                    param.name,
                    param.annotation,
                    unresolved[param.name],
                )
            checked = _param(param.name, hints.get(param.name, inspect.Parameter.empty), task)
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                var_positional = checked
            elif param.kind is inspect.Parameter.VAR_KEYWORD:
                var_keyword = checked
            else:
                if param.kind in _POSITIONAL:
                    positional.append(checked)
                if param.kind in _NAMED:
                    named[param.name] = checked
        everything = [*positional, *named.values(), var_positional, var_keyword]
        if all(p is None for p in everything):
            return None
        return cls(positional, var_positional, named, var_keyword)

    def from_json(
        self, args: list[Any], kwargs: dict[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """Arguments decoded from JSON, converted to the annotated types.

        The arguments must bind to the signature already. Raises `TypeError` naming the
        parameter whose value does not convert.
        """
        if args:
            args = self._positional_from_json(args)
        if kwargs:
            converted = dict(kwargs)
            for name, value in kwargs.items():
                param = self.named.get(name, self.var_keyword)
                if param is not None:
                    converted[name] = param.from_json(value, name)
            kwargs = converted
        return args, kwargs

    def check(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise `TypeError` naming the first argument that would not convert at the worker."""
        if args:
            self._check_positional(args)
        for name, value in kwargs.items():
            param = self.named.get(name, self.var_keyword)
            if param is not None:
                param.check(value, name)

    def _positional_from_json(self, args: list[Any]) -> list[Any]:
        shape = self._shape(len(args))
        if shape is None:
            return args
        if shape.plain is not None and _plain(args, shape.plain):
            return args
        try:
            return list(msgspec.convert((args,), shape.wrapper, str_keys=True).args)
        except Exception:
            pass
        # Convert one by one, for an error that names the parameter.
        converted = list(args)
        for i, value in enumerate(args):
            param, where = self._position(i)
            if param is not None:
                converted[i] = param.from_json(value, where)
        return converted

    def _check_positional(self, args: Sequence[Any]) -> None:
        shape = self._shape(len(args))
        if shape is None:
            return
        if shape.plain is not None and _plain(args, shape.plain):
            return
        try:
            as_json = msgspec.to_builtins(args, str_keys=True)
        except (TypeError, msgspec.EncodeError):
            as_json = None  # check them one by one; encoding the job names the bad type
        if as_json is not None:
            try:
                msgspec.convert((as_json,), shape.wrapper, str_keys=True)
                return
            except Exception:
                pass
        for i, value in enumerate(args):
            param, where = self._position(i)
            if param is not None:
                param.check(value, where)

    def _shape(self, count: int) -> _Shape | None:
        try:
            return self._shapes[count]
        except KeyError:
            pass
        params = [self._position(i)[0] for i in range(count)]
        shape = None if all(p is None for p in params) else _Shape(params)
        if count <= _MAX_SHAPE:
            self._shapes[count] = shape
        return shape

    def _position(self, index: int) -> tuple[_Param | None, str]:
        if index < len(self.positional):
            param = self.positional[index]
            return param, param.name if param is not None else ""
        rest = self.var_positional
        if rest is None:
            return None, ""
        return rest, f"{rest.name}[{index - len(self.positional)}]"


def _plain(args: Sequence[Any], expected: tuple[tuple[int, type], ...]) -> bool:
    """True if each checked argument has exactly its plain annotated type."""
    for i, hint in expected:  # noqa: SIM110 (a loop is faster than all() over a generator)
        if type(args[i]) is not hint:
            return False
    return True


def may_be_non_finite(value: object) -> bool:
    """False if `value` surely holds no NaN or infinity; a quick test, in C."""
    try:
        packed = _MSGPACK.encode(value)
    except (TypeError, msgspec.EncodeError):
        return True
    return _PACKED_NON_FINITE.search(packed) is not None


def find_non_finite(bound: Mapping[str, Any]) -> str | None:
    """Where the first NaN or infinity is among bound arguments: ``'points'[2]['x'] is nan``.

    JSON has no such numbers, and msgspec writes them as ``null``.
    """
    try:
        as_json = msgspec.to_builtins(dict(bound), str_keys=True)
    except (TypeError, msgspec.EncodeError):
        return None  # encoding the job reports it
    for name, value in as_json.items():
        found = _non_finite(value, repr(name))
        if found is not None:
            return found
    return None


def _non_finite(value: Any, where: str) -> str | None:
    # Iterative, so that deep nesting cannot exhaust the stack.
    stack = [(value, where)]
    while stack:
        value, where = stack.pop()
        if type(value) is float:
            if not math.isfinite(value):
                return f"{where} is {value}"
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]") for i, item in reversed(list(enumerate(value))))
        elif isinstance(value, dict):
            stack.extend((item, f"{where}[{key!r}]") for key, item in reversed(value.items()))
    return None


def _param(name: str, hint: Any, task: str) -> _Param | None:
    if any(hint is unchecked for unchecked in _UNCHECKED):
        return None
    try:
        info = msgspec.inspect.type_info(hint)
    except Exception as e:
        reason = str(e)
    else:
        custom = next(_custom_types(info, set()), None)
        if custom is None:
            return _Param(name, hint)
        reason = f"msgspec cannot build a {custom.__qualname__} from JSON"
    log.warning(
        "task %s: parameter %r (%s) is not type-checked: %s", task, name, _type_name(hint), reason
    )
    return None


def _custom_types(info: msgspec.inspect.Type, seen: set[int]) -> Iterator[type]:
    """Classes in a type that msgspec leaves to a hook, which JSON values never become."""
    if id(info) in seen:
        return  # a recursive Struct or dataclass
    seen.add(id(info))
    if isinstance(info, msgspec.inspect.CustomType):
        yield info.cls
        return
    for field in info.__struct_fields__:
        value = getattr(info, field)
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, msgspec.inspect.Field):
                item = item.type
            if isinstance(item, msgspec.inspect.Type):
                yield from _custom_types(item, seen)


def _resolved_hints(fn: Callable[..., Any]) -> tuple[dict[str, Any], dict[str, Exception]]:
    """The resolved annotations of `fn`, and why each of those that cannot be resolved cannot."""
    try:
        return typing.get_type_hints(fn, include_extras=True), {}
    except Exception:
        pass
    # One annotation cannot be resolved (e.g. a name imported under TYPE_CHECKING only):
    # resolve the others one by one, and leave that parameter unchecked.
    hints: dict[str, Any] = {}
    unresolved: dict[str, Exception] = {}
    for name, annotation in getattr(fn, "__annotations__", {}).items():
        holder = types.SimpleNamespace(
            __annotations__={name: annotation}, __globals__=getattr(fn, "__globals__", {})
        )
        try:
            hints.update(typing.get_type_hints(holder, include_extras=True))
        except Exception as e:
            unresolved[name] = e
    return hints, unresolved


def _type_name(hint: Any) -> str:
    """A type as written in code, without module names: ``list[Point] | None``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None) or hint is None:
        return "None"
    if hint is Ellipsis:
        return "..."
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(map(_type_name, args))
    if origin is typing.Literal:
        return f"Literal[{', '.join(map(repr, args))}]"
    if origin is not None and args:
        return f"{_type_name(origin)}[{', '.join(map(_type_name, args))}]"
    if isinstance(hint, type):
        return hint.__qualname__
    return inspect.formatannotation(hint).replace("typing.", "")
