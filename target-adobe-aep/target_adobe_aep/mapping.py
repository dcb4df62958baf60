"""The mapping language: data files that say how a Singer record becomes an XDM entity, compiled once per stream.

A mapping is a list of rules, each writing one XDM path (``to``) from one value source (``from``, ``value``,
``hash``, ``concat``, ``coalesce``, ``when``, ``each``) through optional named transforms and an optional value
``map``; ``identity`` rules fill ``identityMap``. Every value is normalised to plain JSON (datetimes → RFC 3339
UTC, decimals → numbers, text trimmed) and null/empty/blank values are never written, because AEP rejects them.
Each mapping is compiled once into the source of one Python function (``_Codegen``), so converting a record costs
no interpretation. The full language is in README.md and ``mapping.schema.json``.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson

Record = Mapping[str, Any]

PRESETS = resources.files("target_adobe_aep") / "mappings"
_UTC = datetime.UTC
_EPOCH_MS_THRESHOLD = 100_000_000_000  # epoch numbers above this are milliseconds (year 5138 in seconds)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# The spellings the boolean transform takes (README, "Mapping language"), compared lower-cased and trimmed.
BOOLEAN_TEXT = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class MappingError(ValueError):
    """A mapping document is missing or invalid; raised when the stream's SCHEMA arrives."""


class ConversionError(ValueError):
    """One record cannot be converted; it goes to the dead letter with this message."""


_validate_document = fastjsonschema.compile(
    json.loads((resources.files("target_adobe_aep") / "mapping.schema.json").read_text())
)


# --- values -------------------------------------------------------------------------------------------------


def _is_empty(value: Any) -> bool:
    return value is None or (type(value) in (str, list, dict) and not value)


def _utc_text(moment: datetime.datetime) -> str:
    """RFC 3339 in UTC with a ``Z``; naive datetimes are taken as UTC."""
    if moment.tzinfo is not _UTC:  # the SDK's parsing gives UTC times this very tzinfo
        moment = moment.replace(tzinfo=_UTC) if moment.tzinfo is None else moment.astimezone(_UTC)
    return moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds")[:-6] + "Z"


def plain(value: Any) -> Any:
    """``value`` as plain JSON for XDM: text trimmed of leading and trailing whitespace, and nulls, blank text and
    empty lists/objects removed at every depth (sources pad text: Capillary's own samples have ``"Member Tier "``)."""
    kind = type(value)  # exact-type checks first: this runs for every value of every record
    if kind is str:
        return value.strip() or None
    if kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else None  # NaN and infinities have no JSON form
    if kind is decimal.Decimal:
        if not value.is_finite():
            return None
        # The SDK reads JSON numbers as Decimal; integers (no fraction digits) stay integers so XDM integer fields
        # validate.
        return int(value) if value.as_tuple().exponent >= 0 else float(value)
    if kind is dict or isinstance(value, Mapping):
        items = ((k, plain(v)) for k, v in value.items())
        return {k: v for k, v in items if not _is_empty(v)} or None
    if kind is list or kind is tuple:
        return [v for v in map(plain, value) if not _is_empty(v)] or None
    if isinstance(value, datetime.datetime):
        return _utc_text(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, (int, float)):  # subclasses such as enums
        return plain(float(value) if isinstance(value, float) else int(value))
    return str(value)


# --- transforms ---------------------------------------------------------------------------------------------


def _to_datetime(value: Any) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        return value
    if isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool):
        seconds = float(value) / 1000 if abs(float(value)) >= _EPOCH_MS_THRESHOLD else float(value)
        return datetime.datetime.fromtimestamp(seconds, _UTC)
    if isinstance(value, str):
        return datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    msg = f"not a timestamp: {type(value).__name__}"
    raise TypeError(msg)


def _timestamp(value: Any) -> str:
    return _utc_text(_to_datetime(value))


def _date(value: Any) -> str:
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, str) and len(value.strip()) == 10:
        return datetime.date.fromisoformat(value.strip()).isoformat()
    return _to_datetime(value).date().isoformat()


def _number(value: Any) -> float | int:
    kind = type(value)
    if kind is int or (kind is float and math.isfinite(value)):
        return value
    if kind is bool:
        raise TypeError("a boolean is not a number")
    number = decimal.Decimal(str(value).strip())
    if not number.is_finite():
        raise ValueError("not a finite number")
    result = plain(number)
    # XDM numbers are doubles: a whole number beyond 64 bits is sent as one.
    return result if _INT64_MIN <= result <= _INT64_MAX else float(result)


def _integer(value: Any) -> int:
    number = decimal.Decimal(str(_number(value)))
    if number != number.to_integral_value():
        msg = f"{value!r} is not a whole number"
        raise ValueError(msg)
    if not _INT64_MIN <= number <= _INT64_MAX:
        msg = f"{value!r} is beyond 64 bits (XDM integer fields are 64-bit)"
        raise ValueError(msg)
    return int(number)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    found = BOOLEAN_TEXT.get(str(value).strip().lower())
    if found is None:
        msg = f"{value!r} is not a boolean (true/false/1/0/yes/no)"
        raise ValueError(msg)
    return found


def as_text(value: Any) -> str:
    """``value`` as the text a mapping writes for it (identities, ``string`` transforms, the ``hash`` parts)."""
    kind = type(value)
    if kind is str:
        return value
    if kind is int:
        return str(value)
    if isinstance(value, str):
        return value
    value = plain(value)
    # JSON spelling for booleans and containers, so "true" rather than Python's "True".
    return orjson.dumps(value).decode() if isinstance(value, (dict, list, bool)) else str(value)


def _fail_map(value: Any) -> None:
    msg = f"expected an object, got {type(value).__name__}"
    raise TypeError(msg)


TRANSFORMS: dict[str, Callable[[Any], Any]] = {
    "timestamp": _timestamp,
    "date": _date,
    "number": _number,
    "integer": _integer,
    "string": as_text,
    "boolean": _boolean,
    "lowercase": lambda v: as_text(v).lower(),
    "uppercase": lambda v: as_text(v).upper(),
    "trim": lambda v: as_text(v).strip(),
    "sha256": lambda v: hashlib.sha256(as_text(v).encode()).hexdigest(),
    "abs": lambda v: abs(_number(v)),
    "round": lambda v: round(_number(v)),
    "list": lambda v: v if isinstance(v, list) else [v],
    "string_list": lambda v: [as_text(x) for x in (v if isinstance(v, list) else [v])],
    "string_values": lambda v: {k: as_text(x) for k, x in v.items()} if isinstance(v, dict) else _fail_map(v),
}


# --- compilation: a mapping becomes the source of one Python function, compiled once ------------------------

_PLAIN_AS_IS = frozenset({int, bool, type(None)})  # plain() would return these unchanged
_SIZED = frozenset({str, list, dict})
_PARSE_ANY = frozenset({"timestamp", "date"})  # take datetimes, text and numbers as they come: no plain() first


def _segments(path: str) -> tuple[str | int, ...]:
    return tuple(int(part) if part.isdigit() else part for part in path.split("."))


def _step(node: Any, key: str | int) -> Any:
    """A path step off the ``dict`` fast path: other mappings, list indexes; anything else has no value."""
    if isinstance(node, Mapping):
        return node.get(key)
    if type(node) is list and type(key) is int and key < len(node):
        return node[key]
    return None


def _canonical(record: Record) -> str:
    return orjson.dumps(plain(record), option=orjson.OPT_SORT_KEYS).decode()


def hash_parts(parts: list) -> str:
    """The ``hash`` value source: SHA-256 of the parts' texts (how mappings derive ``_id``)."""
    text = "\x1f".join("" if (v := plain(p)) is None else as_text(v) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()


def _concat(parts: list, separator: str) -> str | None:
    return separator.join(as_text(v) for p in parts if not _is_empty(v := plain(p))) or None


def _coalesce(parts: list) -> Any:
    for part in parts:
        value = plain(part)
        if not _is_empty(value):
            return value
    return None


def _compare(value: Any, op: str, bound: float, path: str) -> bool:
    if _is_empty(value):
        return False
    try:
        number = _number(value)
    except (ValueError, TypeError, ArithmeticError):
        msg = f"condition on {path}: {str(value)[:80]!r} is not a number"
        raise ConversionError(msg) from None
    return number > bound if op == ">" else number < bound


def _transformed(value: Any, chain: tuple, where: str) -> Any:
    """The transform chain step by step: the slow path, taken only after the inlined chain failed."""
    value = plain(value)
    for name, transform in chain:
        if _is_empty(value):
            return None
        try:
            value = transform(value)
        except (ValueError, TypeError, ArithmeticError) as exc:
            msg = f"{where}: {name} of {str(value)[:80]!r} failed: {exc}"
            raise ConversionError(msg) from None
    return value


def _looked_up(value: Any, table: dict, default: Any) -> Any:
    value = plain(value)
    return default if _is_empty(value) else table.get(as_text(value), default)


@dataclass(frozen=True)
class _Context:
    stream: str
    tenant_id: str
    identity_namespaces: Mapping[str, str]


class _Codegen:
    """Writes the function that converts one record, rule by rule, in the order of the mapping.

    Every value a mapping supplies (paths, constants, tables) enters the code as ``repr()`` of a string or as a
    named constant of the function's namespace, never as code.
    """

    def __init__(self, context: _Context) -> None:
        self.context = context
        self.lines: list[str] = []
        self.namespace: dict[str, Any] = {
            "plain": plain, "_step": _step, "_canonical": _canonical, "_hash": hash_parts, "_concat": _concat,
            "_coalesce": _coalesce, "_compare": _compare, "_transformed": _transformed, "_looked_up": _looked_up,
            "_is_empty": _is_empty, "as_text": as_text, "_PLAIN_AS_IS": _PLAIN_AS_IS, "_SIZED": _SIZED,
        }  # fmt: skip
        self._count = 0

    def var(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}{self._count}"

    def const(self, value: Any) -> str:
        name = self.var("k")
        self.namespace[name] = value
        return name

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def function(self, rules: list[dict]) -> Callable[[Record], dict]:
        self.emit(0, "def convert(root):")
        self.emit(1, f"return {self.object(1, rules, 'root')}")
        source = "\n".join(self.lines)
        exec(compile(source, f"<mapping {self.context.stream}>", "exec"), self.namespace)
        return self.namespace["convert"]

    def object(self, depth: int, rules: list[dict], item: str) -> str:
        """Code building one output object from ``item``; returns the variable holding it."""
        paths = [output_path(rule, self.context.tenant_id) for rule in rules]
        for path in paths:
            inner = next((p for p in paths if len(p) > len(path) and p[: len(path)] == path), None)
            if inner is not None:
                whole, part = ".".join(path), ".".join(inner)
                msg = f"'{whole}' is written whole and also inside ('{part}'); keep one of them"
                raise MappingError(msg)
        out = self.var("o")
        self.emit(depth, f"{out} = {{}}")
        nodes: dict[tuple, str] = {(): out}
        for rule, path in zip(rules, paths, strict=True):
            parent = self._node(depth, nodes, path[:-1])
            if "identity" in rule:
                self._identity(depth, rule, item, parent)
                continue
            value = self._rule_value(depth, rule, item)
            self.emit(depth, f"if {value} is not None and ({value}.__class__ not in _SIZED or {value}):")
            self.emit(depth + 1, f"{parent}[{path[-1]!r}] = {value}")
        for path in sorted(nodes, key=len, reverse=True)[:-1]:  # drop objects left empty, innermost first
            self.emit(depth, f"if not {nodes[path]}:")
            self.emit(depth + 1, f"del {nodes[path[:-1]]}[{path[-1]!r}]")
        return out

    def _node(self, depth: int, nodes: dict[tuple, str], path: tuple) -> str:
        """The variable of the object at ``path``, created (and attached to its parent) on first use."""
        for size in range(1, len(path) + 1):
            prefix = path[:size]
            if prefix not in nodes:
                nodes[prefix] = self.var("o")
                self.emit(depth, f"{nodes[prefix]} = {nodes[prefix[:-1]]}[{prefix[-1]!r}] = {{}}")
        return nodes[path]

    def _source(self, depth: int, source: str | dict, item: str) -> str:
        """Code reading one source (path, ``$stream``, ``$record``, ``@`` or constant) into a new variable."""
        name = self.var("s")
        if isinstance(source, dict):
            self.emit(depth, f"{name} = {self.const(plain(source['value']))}")
        elif source == "$stream":
            self.emit(depth, f"{name} = {self.const(self.context.stream)}")
        elif source == "$record":
            self.emit(depth, f"{name} = _canonical(root)")
        elif source == "@":
            self.emit(depth, f"{name} = {item}")
        else:
            from_root = source.startswith("$.")
            self.emit(depth, f"{name} = {'root' if from_root else item}")
            for key in _segments(source[2:] if from_root else source):
                self.emit(depth, f"{name} = {name}.get({key!r}) if type({name}) is dict else _step({name}, {key!r})")
        return name

    def _rule_value(self, depth: int, rule: dict, item: str) -> str:
        if "each" in rule:
            return self._each(depth, rule, item)
        raw = "from" in rule or "when" in rule  # may hold Decimals, datetimes, nulls: needs plain()
        if "from" in rule:
            value = self._source(depth, rule["from"], item)
        elif "value" in rule:
            value = self._source(depth, {"value": rule["value"]}, item)
        elif "when" in rule:
            value = self._when(depth, rule["when"], rule.get("else"), item)
        else:
            kind = next(k for k in ("hash", "concat", "coalesce") if k in rule)
            parts = ", ".join(self._source(depth, s, item) for s in rule[kind])
            value = self.var("v")
            extra = f", {self.const(rule.get('separator', ''))}" if kind == "concat" else ""
            self.emit(depth, f"{value} = _{kind}([{parts}]{extra})")
        if rule.get("transform"):
            self._transform(depth, value, rule["transform"], rule["to"])
            raw = False
        if "map" in rule:
            table, default = self.const(rule["map"]), self.const(rule.get("default"))
            self.emit(depth, f"{value} = _looked_up({value}, {table}, {default})")
            raw = False
        if raw:
            self._normalise(depth, value)
        return value

    def _normalise(self, depth: int, value: str) -> None:
        """``value = plain(value)``, with text (most values) trimmed inline."""
        self.emit(depth, f"if {value}.__class__ is str:")
        self.emit(depth + 1, f"{value} = {value}.strip() or None")
        self.emit(depth, f"elif {value}.__class__ not in _PLAIN_AS_IS:")
        self.emit(depth + 1, f"{value} = plain({value})")

    def _transform(self, depth: int, value: str, names: str | list[str], where: str) -> None:
        """Inline calls of the chain; on failure ``_transformed`` runs it again, step by step, which either names
        the step that failed or (for inputs that only fail unnormalised) gives the value."""
        chain = tuple((name, TRANSFORMS[name]) for name in ([names] if isinstance(names, str) else names))
        original = self.var("t")
        self.emit(depth, f"{original} = {value}")
        self.emit(depth, "try:")
        if chain[0][0] not in _PARSE_ANY:
            self._normalise(depth + 1, value)
        for _, transform in chain:
            self.emit(depth + 1, f"if {value} is not None and ({value}.__class__ not in _SIZED or {value}):")
            self.emit(depth + 2, f"{value} = {self.const(transform)}({value})")
            self.emit(depth + 1, "else:")
            self.emit(depth + 2, f"{value} = None")
        self.emit(depth, "except (ValueError, TypeError, ArithmeticError):")
        self.emit(depth + 1, f"{value} = _transformed({original}, {self.const(chain)}, {self.const(where)})")

    def _each(self, depth: int, rule: dict, item: str) -> str:
        items, results, element = self._source(depth, rule["each"], item), self.var("a"), self.var("e")
        self.emit(depth, f"{results} = []")
        self.emit(depth, f"if type({items}) is list:")
        self.emit(depth + 1, f"for {element} in {items}:")
        converted = self.object(depth + 2, rule["fields"], element)
        self.emit(depth + 2, f"if {converted}:")
        self.emit(depth + 3, f"{results}.append({converted})")
        return results

    def _when(self, depth: int, branches: list[dict], otherwise: Any, item: str) -> str:
        value = self.var("w")
        for branch in branches:
            self.emit(depth, f"if {self._condition(depth, branch['if'], item)}:")
            source = branch["from"] if "from" in branch else {"value": branch["value"]}
            self.emit(depth + 1, f"{value} = {self._source(depth + 1, source, item)}")
            self.emit(depth, "else:")
            depth += 1
        self.emit(depth, f"{value} = {self.const(otherwise)}")
        return value

    def _condition(self, depth: int, spec: dict, item: str) -> str:
        """Code reading the condition's path; returns the test expression."""
        value = self._source(depth, spec["path"], item)
        self.emit(depth, f"{value} = plain({value})")
        if "equals" in spec:
            return f"{value} == {self.const(spec['equals'])}"
        if "in" in spec:
            return f"{value} in {self.const(spec['in'])}"
        if "exists" in spec:
            return f"_is_empty({value}) is {not spec['exists']}"
        op, bound = (">", spec["gt"]) if "gt" in spec else ("<", spec["lt"])
        return f"_compare({value}, {op!r}, {self.const(bound)}, {self.const(spec['path'])})"

    def _identity(self, depth: int, rule: dict, item: str, identity_map: str) -> None:
        key = rule["identity"]
        namespace = self.context.identity_namespaces.get(key)
        if not namespace:
            msg = f"identity {key!r} has no namespace: add it to the identity_namespaces setting"
            raise MappingError(msg)
        value = self._source(depth, rule["from"], item)
        if rule.get("transform"):
            self._transform(depth, value, rule["transform"], f"identityMap.{namespace}")
        else:
            self.emit(depth, f"{value} = plain({value})")
        entry = f"{{'id': as_text({value}), 'primary': {rule.get('primary', False)!r}, "
        entry += f"'authenticatedState': {rule.get('authenticatedState', 'ambiguous')!r}}}"
        self.emit(depth, f"if not _is_empty({value}):")
        self.emit(depth + 1, f"{identity_map}.setdefault({namespace!r}, []).append({entry})")


@dataclass(frozen=True)
class StreamMapping:
    """A compiled mapping for one stream."""

    stream: str
    target: str
    origin: str
    source_paths: tuple[str, ...]
    #: The XDM paths the mapping can write, as a tree: ``{key: subtree}``, None for a value written whole.
    output_tree: dict[str, Any]
    #: The same paths (``"[]"`` steps into list items) and the XDM field that takes what is written there, when the
    #: mapping decides its type (``{"type": "string", "format": "date-time"}``, ...; None when the record's value does).
    written: dict[tuple[str, ...], dict | None]
    _convert: Callable[[Record], dict]

    def convert(self, record: Record) -> dict:
        """The XDM entity for ``record``; raises ``ConversionError`` when it cannot be converted."""
        return self.convert_timed(record)[0]

    def convert_timed(self, record: Record) -> tuple[dict, datetime.datetime | None]:
        """``convert``, and the ExperienceEvent's timestamp as a datetime (None for a profile)."""
        out = self._convert(record)
        return out, _check_event(out) if self.target == "event" else None


def _check_event(event: dict) -> datetime.datetime:
    """The timestamp of an ExperienceEvent, whose class requires ``_id`` and a ``timestamp`` (a ``date-time``)."""
    if "_id" not in event:
        raise ConversionError("the ExperienceEvent has no _id: every source of the mapping's _id rule is empty")
    timestamp = event.get("timestamp")
    if not isinstance(timestamp, str):
        raise ConversionError("the ExperienceEvent has no timestamp: its source is empty")
    try:
        moment = _to_datetime(timestamp)
    except ValueError:
        msg = f"the ExperienceEvent timestamp {timestamp!r} is not RFC 3339"
        raise ConversionError(msg) from None
    if moment.tzinfo is None:
        msg = f"the ExperienceEvent timestamp {timestamp!r} has no UTC offset"
        raise ConversionError(msg)
    return moment


def output_path(rule: dict, tenant_id: str) -> tuple[str, ...]:
    """The XDM path a rule writes; identity rules write an entry of ``identityMap`` keyed by namespace."""
    if "identity" in rule:
        return ("identityMap", "*")
    return tuple(rule["to"].replace("{tenant_id}", tenant_id).split("."))


def _output_tree(rules: list[dict], tenant_id: str) -> dict[str, Any]:
    """The XDM paths ``rules`` can write (``each`` rules: the paths of one list element)."""
    tree: dict[str, Any] = {}
    for rule in rules:
        path = output_path(rule, tenant_id)
        if path[-1] == "*":  # keyed by a name the data decides: the object is written whole
            path = path[:-1]
        *parents, leaf = path
        node = tree
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = _output_tree(rule["fields"], tenant_id) if "each" in rule else None
    return tree


# The XDM field (JSON Schema, as the Schema Registry writes it) each transform's result can be written to; ``list``
# wraps what the transform before it gives.
_STRING: dict[str, Any] = {"type": "string"}
_TRANSFORM_FIELDS: dict[str, dict[str, Any]] = {
    "timestamp": {"type": "string", "format": "date-time"}, "date": {"type": "string", "format": "date"},
    "number": {"type": "number"}, "integer": {"type": "integer"}, "round": {"type": "integer"},
    "abs": {"type": "number"}, "string": _STRING, "lowercase": _STRING, "uppercase": _STRING, "trim": _STRING,
    "sha256": _STRING, "boolean": {"type": "boolean"}, "list": {"type": "array"},
    "string_values": {"type": "object", "additionalProperties": _STRING},
    "string_list": {"type": "array", "items": _STRING},
}  # fmt: skip
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}


def _constant_field(value: Any) -> dict[str, Any] | None:
    value = plain(value)
    if value is None:
        return None
    return {"type": _JSON_TYPES.get(type(value), "object")}


def _one_field(fields: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The one field all of ``fields`` agree on (Nones left out); None when they differ or one is unknown."""
    known = [field for field in fields if field is not None]
    unknown = any(field == {} for field in known)
    return known[0] if known and not unknown and all(field == known[0] for field in known) else None


def _transformed_field(transforms: str | list[str]) -> dict[str, Any]:
    chain = [transforms] if isinstance(transforms, str) else transforms
    field = _TRANSFORM_FIELDS[chain[-1]]
    if chain[-1] == "list" and len(chain) > 1 and chain[-2] != "list":
        return {"type": "array", "items": _TRANSFORM_FIELDS[chain[-2]]}
    return field


def _rule_field(rule: dict) -> dict[str, Any] | None:
    """The XDM field that takes what ``rule`` writes, when the rule decides its type; None when the record's value
    does (a ``from`` without a typing transform)."""
    if "each" in rule:
        return {"type": "array", "items": {"type": "object"}}
    if "map" in rule:
        return _one_field([_constant_field(value) for value in [*rule["map"].values(), rule.get("default")]])
    if rule.get("transform"):
        return _transformed_field(rule["transform"])
    if "hash" in rule or "concat" in rule:
        return _STRING
    if "value" in rule:
        return _constant_field(rule["value"])
    if "when" in rule:
        branches = [*rule["when"], {"value": rule.get("else")}]
        return _one_field([_constant_field(b["value"]) if "value" in b else {} for b in branches])
    return None


def _written(rules: list[dict], tenant_id: str, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], dict | None]:
    """Each path ``rules`` can write and the field that takes it (``StreamMapping.written``)."""
    written: dict[tuple[str, ...], dict | None] = {}
    for rule in rules:
        if "identity" in rule:
            written[(*prefix, "identityMap")] = {"type": "object"}
            continue
        path = (*prefix, *output_path(rule, tenant_id))
        written[path] = _rule_field(rule)
        if "each" in rule:
            written.update(_written(rule["fields"], tenant_id, (*path, "[]")))
    return written


def _source_paths(rules: list[dict], prefix: str = "") -> list[str]:
    """Every record path a mapping reads, for checking it against the stream's schema."""
    paths: list[str] = []

    def add(path: str) -> None:
        if path not in ("$stream", "$record", "@"):
            paths.append(path[2:] if path.startswith("$.") else f"{prefix}{path}")

    for rule in rules:
        for key in ("from", "each"):
            if key in rule:
                add(rule[key])
        for source in rule.get("hash", []) + rule.get("concat", []) + rule.get("coalesce", []):
            if isinstance(source, str):
                add(source)
        for branch in rule.get("when", []):
            add(branch["if"]["path"])
            if "from" in branch:
                add(branch["from"])
        if "each" in rule:
            paths.extend(_source_paths(rule["fields"], f"{prefix}{rule['each']}[]."))
    return paths


def load_document(stream: str, override: str | dict | None) -> tuple[dict, str]:
    """The mapping document for ``stream`` and where it came from: inline, a file, or the built-in preset."""
    if isinstance(override, dict):
        return override, "inline mapping"
    if override:
        path = Path(override).expanduser()
        try:
            return orjson.loads(path.read_bytes()), str(path)
        except (OSError, orjson.JSONDecodeError) as exc:
            msg = f"cannot read the mapping file for stream {stream!r}: {exc}"
            raise MappingError(msg) from exc
    preset = PRESETS / f"{stream}.json"
    if not preset.is_file():
        msg = (
            f"stream {stream!r} has no mapping: there is no built-in preset for it, so add one to the 'mappings' "
            f"setting (a file path or an inline mapping), e.g. mappings: {{{stream}: path/to/{stream}.json}}, "
            "or deselect the stream"
        )
        raise MappingError(msg)
    return orjson.loads(preset.read_bytes()), f"preset {stream}.json"


def compile_mapping(
    stream: str,
    document: dict,
    origin: str,
    *,
    tenant_id: str,
    identity_namespaces: Mapping[str, str],
) -> StreamMapping:
    try:
        _validate_document(document)
    except fastjsonschema.JsonSchemaValueException as exc:
        msg = f"invalid mapping for stream {stream!r} ({origin}): {exc.message}"
        raise MappingError(msg) from None
    rules = document.get("fields", [])
    if document["target"] != "none" and any("{tenant_id}" in r.get("to", "") for r in _walk(rules)) and not tenant_id:
        msg = f"the mapping for stream {stream!r} ({origin}) writes tenant fields: set the tenant_id setting"
        raise MappingError(msg)
    convert = _Codegen(_Context(stream, tenant_id, identity_namespaces)).function(rules)
    output_tree, written = _output_tree(rules, tenant_id), _written(rules, tenant_id)
    return StreamMapping(stream, document["target"], origin, tuple(_source_paths(rules)), output_tree, written, convert)


def _walk(rules: list[dict]) -> list[dict]:
    return [r for rule in rules for r in [rule, *_walk(rule.get("fields", []))]]


def missing_source_paths(mapping: StreamMapping, schema: dict) -> list[str]:
    """The paths ``mapping`` reads that the stream's JSON schema does not declare (schema drift, typos)."""

    def declared(node: dict, keys: list[str]) -> bool:
        if not keys:
            return True
        if "anyOf" in node:
            return any(declared(branch, keys) for branch in node["anyOf"])
        key, rest = keys[0], keys[1:]
        if key.isdigit() and "items" in node:
            return declared(node["items"], rest)
        properties = node.get("properties")
        if properties is None:  # a free-form object declares whatever it holds
            return node.get("additionalProperties") is not False
        if key.endswith("[]"):
            return key[:-2] in properties and declared(properties[key[:-2]].get("items") or {}, rest)
        return key in properties and declared(properties[key], rest)

    return [path for path in mapping.source_paths if not declared(schema, path.split("."))]
