"""The mapping language: value sources, transforms, empty-value omission, determinism and document errors."""

from __future__ import annotations

import datetime
import decimal

import pytest

from target_adobe_aep.mapping import ConversionError, MappingError, compile_mapping, load_document, missing_source_paths

NAMESPACES = {"email": "Email", "customer_id": "CRM"}


def convert(fields: list[dict], record: dict, target: str = "profile", tenant: str = "acme") -> dict:
    mapping = compile_mapping("s", {"target": target, "fields": fields}, "test", tenant_id=tenant,
                              identity_namespaces=NAMESPACES)  # fmt: skip
    return mapping.convert(record)


def test_nulls_and_empty_values_are_omitted_at_every_depth() -> None:
    fields = [
        {"to": "a.b", "from": "x"},
        {"to": "a.c", "from": "y"},
        {"to": "obj", "from": "nested"},
        {"to": "items", "each": "list", "fields": [{"to": "v", "from": "v"}]},
        {"to": "name", "concat": ["first", "last"], "separator": " "},
    ]
    record = {"x": None, "y": "", "nested": {"k": None, "e": "", "l": [], "o": {}, "keep": 0, "f": False},
              "list": [{"v": None}, {"v": ""}, {"v": "z"}], "first": "", "last": None}  # fmt: skip
    assert convert(fields, record) == {"obj": {"keep": 0, "f": False}, "items": [{"v": "z"}]}


def test_text_is_trimmed_and_blank_text_dropped_wherever_a_mapping_takes_it() -> None:
    fields = [
        {"to": "plain", "from": "padded"},
        {"to": "blank", "from": "spaces"},
        {"to": "coalesced", "coalesce": ["spaces", "padded"]},
        {"to": "joined", "concat": ["spaces", "padded", "tab"], "separator": "|"},
        {"to": "mapped", "from": "kind", "map": {"RETURN": "credit memo"}},
        {"to": "chosen", "when": [{"if": {"path": "kind", "equals": "RETURN"}, "from": "padded"}]},
        {"to": "upper", "from": "padded", "transform": "uppercase"},
        {"to": "object", "from": "fields", "transform": "string_values"},
        {"to": "items", "each": "tiers", "fields": [{"to": "name", "from": "@"}]},
        {"identity": "email", "from": "email"},
        {"to": "constant", "value": " x "},
    ]
    record = {"padded": " Member Tier ", "spaces": " \t\n ", "tab": "\tb\t", "kind": " RETURN ", "email": " a@b.c ",
              "fields": {"city": " Pune ", "empty": "  "}, "tiers": ["Gold ", "  "]}  # fmt: skip
    assert convert(fields, record) == {
        "plain": "Member Tier",
        "coalesced": "Member Tier",
        "joined": "Member Tier|b",
        "mapped": "credit memo",
        "chosen": "Member Tier",
        "upper": "MEMBER TIER",
        "object": {"city": "Pune"},
        "items": [{"name": "Gold"}],
        "identityMap": {"Email": [{"id": "a@b.c", "primary": False, "authenticatedState": "ambiguous"}]},
        "constant": "x",
    }


def test_hash_id_is_deterministic_and_independent_of_number_and_offset_spelling() -> None:
    # The SDK hands date-time fields over as datetimes and JSON numbers as Decimal or int.
    india = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
    fields = [{"to": "_id", "hash": ["$stream", "id", "at"]}]
    a = convert(fields, {"id": 7, "at": datetime.datetime(2024, 1, 1, 5, 30, tzinfo=india)})["_id"]
    b = convert(fields, {"id": decimal.Decimal("7"), "at": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)})
    c = convert(fields, {"id": 8, "at": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)})["_id"]
    assert a == b["_id"]
    assert a != c
    assert len(a) == 64
    assert all(ch in "0123456789abcdef" for ch in a)
    # Field boundaries matter: ("1", "23") and ("12", "3") must differ.
    assert convert([{"to": "_id", "hash": ["p", "q"]}], {"p": "1", "q": "23"}) != convert(
        [{"to": "_id", "hash": ["p", "q"]}], {"p": "12", "q": "3"}
    )


@pytest.mark.parametrize(
    ("transform", "value", "expected"),
    [
        ("timestamp", "2024-03-01T10:00:00+05:30", "2024-03-01T04:30:00Z"),
        ("timestamp", "2024-03-01T10:00:00", "2024-03-01T10:00:00Z"),
        ("timestamp", "2024-03-01T10:00:00.250Z", "2024-03-01T10:00:00.250Z"),
        ("timestamp", 1709287200, "2024-03-01T10:00:00Z"),
        ("timestamp", 1709287200123, "2024-03-01T10:00:00.123Z"),
        ("date", "2024-03-01T23:00:00+00:00", "2024-03-01"),
        ("date", "1990-12-31", "1990-12-31"),
        ("number", "12.50", 12.5),
        ("number", decimal.Decimal("3"), 3),
        ("integer", "4.0", 4),
        ("integer", str(2**63 - 1), 2**63 - 1),
        ("number", str(2**70), float(2**70)),  # XDM numbers are doubles
        ("round", 2.6, 3),
        ("string", 42, "42"),
        ("string", True, "true"),
        ("boolean", "Yes", True),
        ("boolean", 0, False),
        ("lowercase", "A@B.COM", "a@b.com"),
        ("uppercase", "inr", "INR"),
        ("trim", "  x ", "x"),
        ("sha256", "a@b.com", "fb98d44ad7501a959f3f4f4a3f004fe2d9e581ea6207e218c4b02c08a4d75adf"),
        ("abs", -5, 5),
        ("list", "x", ["x"]),
        ("string_values", {"n": 1, "b": False, "s": "t"}, {"n": "1", "b": "false", "s": "t"}),
        ("string_list", [4211, " 77 ", True], ["4211", "77", "true"]),
        ("string_list", 4211, ["4211"]),
    ],
)
def test_transforms(transform: str, value: object, expected: object) -> None:
    assert convert([{"to": "v", "from": "v", "transform": transform}], {"v": value}) == {"v": expected}


def test_transform_chain_and_failure_names_the_field() -> None:
    fields = [{"to": "email", "from": "e", "transform": ["trim", "lowercase", "sha256"]}]
    assert convert(fields, {"e": " A@B.com "}) == convert(fields, {"e": "a@b.com"})
    with pytest.raises(ConversionError, match=r"loyalty\.points: number of 'lots' failed"):
        convert([{"to": "loyalty.points", "from": "p", "transform": "number"}], {"p": "lots"})
    with pytest.raises(ConversionError, match="integer"):
        convert([{"to": "q", "from": "q", "transform": "integer"}], {"q": 1.5})
    with pytest.raises(ConversionError, match="beyond 64 bits"):
        convert([{"to": "q", "from": "q", "transform": "integer"}], {"q": str(2**63)})


@pytest.mark.parametrize("text", ["y", "n", "on", "off", "t"])
def test_the_boolean_transform_takes_only_the_documented_spellings(text: str) -> None:
    with pytest.raises(ConversionError, match="not a boolean"):
        convert([{"to": "b", "from": "b", "transform": "boolean"}], {"b": text})


def test_when_map_coalesce_constant_and_root_paths_inside_each() -> None:
    fields = [
        {"to": "kind", "when": [{"if": {"path": "t", "in": ["R", "NR"]}, "value": "return"},
                                {"if": {"path": "amount", "gt": 100}, "value": "big"},
                                {"if": {"path": "flag", "exists": True}, "from": "flag"}], "else": "plain"},
        {"to": "code", "from": "c", "transform": "lowercase", "map": {"m": "male"}, "default": "unknown"},
        {"to": "at", "coalesce": ["missing", {"value": ""}, "second"]},
        {"to": "source", "value": "capillary"},
        {"to": "lines", "each": "lines", "fields": [{"to": "sku", "from": "sku"}, {"to": "cur", "from": "$.cur"},
                                                     {"to": "tag", "from": "@"}]},
    ]  # fmt: skip
    record = {"t": "X", "amount": "150", "c": "M", "second": "s2", "cur": "EUR", "lines": [{"sku": "A"}, "raw"]}
    assert convert(fields, record) == {
        "kind": "big",
        "code": "male",
        "at": "s2",
        "source": "capillary",
        "lines": [{"sku": "A", "cur": "EUR", "tag": {"sku": "A"}}, {"cur": "EUR", "tag": "raw"}],
    }
    assert convert(fields, {"t": "NR"})["kind"] == "return"
    assert convert(fields, {"flag": "f"})["kind"] == "f"
    assert convert(fields, {"c": "x"})["code"] == "unknown"
    assert convert(fields, {})["kind"] == "plain"


def test_identity_rules_build_the_identity_map() -> None:
    fields = [
        {"identity": "customer_id", "from": "id", "primary": True},
        {"identity": "email", "from": "mail", "transform": "lowercase", "authenticatedState": "authenticated"},
        {"identity": "email", "from": "alt_mail"},
    ]
    assert convert(fields, {"id": 5, "mail": "A@x.io", "alt_mail": None}) == {
        "identityMap": {
            "CRM": [{"id": "5", "primary": True, "authenticatedState": "ambiguous"}],
            "Email": [{"id": "a@x.io", "primary": False, "authenticatedState": "authenticated"}],
        }
    }


def test_written_says_the_field_each_rule_writes() -> None:
    """What provision builds the tenant field group from and preflight checks against the schema: the type a rule
    decides (its last transform, a constant, hash/concat, a map's values), None where the record's value decides."""
    fields = [
        {"to": "at", "from": "t", "transform": ["trim", "timestamp"]},
        {"to": "day", "from": "t", "transform": "date"},
        {"to": "ids", "from": "i", "transform": ["string", "list"]},
        {"to": "cards", "from": "c", "transform": "string_list"},
        {"to": "extra", "from": "x", "transform": "string_values"},
        {"to": "kind", "from": "k", "map": {"a": 1, "b": 2}},
        {"to": "mixed", "from": "k", "map": {"a": 1, "b": "two"}},
        {"to": "state", "when": [{"if": {"path": "s", "equals": 1}, "value": "on"}], "else": "off"},
        {"to": "either", "when": [{"if": {"path": "s", "equals": 1}, "from": "a"}], "else": "off"},
        {"to": "_id", "hash": ["id"]},
        {"to": "raw", "from": "r"},
        {"to": "lines", "each": "l", "fields": [{"to": "qty", "from": "q", "transform": "round"}]},
        {"identity": "email", "from": "e"},
    ]
    mapping = compile_mapping("s", {"target": "profile", "fields": fields}, "test", tenant_id="acme",
                              identity_namespaces=NAMESPACES)  # fmt: skip
    string = {"type": "string"}
    assert mapping.written == {
        ("at",): {"type": "string", "format": "date-time"},
        ("day",): {"type": "string", "format": "date"},
        ("ids",): {"type": "array", "items": string},
        ("cards",): {"type": "array", "items": string},
        ("extra",): {"type": "object", "additionalProperties": string},
        ("kind",): {"type": "integer"},
        ("mixed",): None,
        ("state",): string,
        ("either",): None,
        ("_id",): string,
        ("raw",): None,
        ("lines",): {"type": "array", "items": {"type": "object"}},
        ("lines", "[]", "qty"): {"type": "integer"},
        ("identityMap",): {"type": "object"},
    }


def test_tenant_placeholder() -> None:
    assert convert([{"to": "_{tenant_id}.x.y", "value": 1}], {}) == {"_acme": {"x": {"y": 1}}}


def test_events_need_id_and_a_timestamp() -> None:
    fields = [{"to": "_id", "hash": ["id"]}, {"to": "timestamp", "from": "at", "transform": "timestamp"}]
    event = convert(fields, {"id": 1, "at": "2020-01-01T00:00:00Z"}, target="event")
    assert event["timestamp"] == "2020-01-01T00:00:00Z"
    with pytest.raises(ConversionError, match="no timestamp"):
        convert(fields, {"id": 1}, target="event")
    mapping = compile_mapping("s", {"target": "event", "fields": fields}, "test", tenant_id="acme",
                              identity_namespaces={})  # fmt: skip
    far = {"id": 1, "at": "2999-01-01T05:30:00+05:30"}  # the mapping does not judge time: the converter does
    assert mapping.convert_timed(far) == (
        mapping.convert(far),
        datetime.datetime(2999, 1, 1, tzinfo=datetime.UTC),
    )
    with pytest.raises(ConversionError, match="no _id"):
        convert([{"to": "_id", "from": "id"}, {"to": "timestamp", "value": "2020-01-01T00:00:00Z"}], {}, target="event")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"fields": []}, "'target'"),
        ({"target": "event"}, "fields"),
        ({"target": "event", "fields": [{"to": "a"}]}, "invalid mapping"),
        ({"target": "event", "fields": [{"to": "a", "from": "b", "value": 1}]}, "invalid mapping"),
        ({"target": "event", "fields": [{"to": "a", "from": "b", "transform": "reverse"}]}, "invalid mapping"),
        ({"target": "event", "fields": [{"identity": "fax", "from": "f"}]}, "identity_namespaces"),
        ({"target": "profile", "fields": [{"to": "_{tenant_id}.x", "from": "f"}]}, "tenant_id"),
    ],
)
def test_invalid_documents_are_rejected_when_compiled(document: dict, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        compile_mapping("s", document, "test", tenant_id="", identity_namespaces=NAMESPACES)


def test_load_document_sources(tmp_path) -> None:
    assert load_document("customers", None)[1] == "preset customers.json"
    assert load_document("anything", {"target": "none"}) == ({"target": "none"}, "inline mapping")
    path = tmp_path / "m.json"
    path.write_text('{"target": "none"}')
    assert load_document("anything", str(path)) == ({"target": "none"}, str(path))
    with pytest.raises(MappingError, match="no mapping"):
        load_document("orders", None)
    with pytest.raises(MappingError, match="cannot read"):
        load_document("orders", str(tmp_path / "missing.json"))


def test_missing_source_paths_reports_drift() -> None:
    schema = {"type": "object", "properties": {
        "a": {"type": "string"},
        "o": {"type": ["object", "null"], "properties": {"b": {"type": "string"}}},
        "free": {"type": "object"},
        "lines": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"}}}},
    }}  # fmt: skip
    fields = [
        {"to": "x", "from": "a"}, {"to": "y", "from": "o.b"}, {"to": "z", "from": "o.c"},
        {"to": "w", "from": "free.anything"}, {"to": "v", "hash": ["$stream", "gone"]},
        {"to": "l", "each": "lines", "fields": [{"to": "s", "from": "sku"}, {"to": "q", "from": "qty"},
                                                {"to": "r", "from": "$.a"}]},
    ]  # fmt: skip
    mapping = compile_mapping("s", {"target": "profile", "fields": fields}, "t", tenant_id="", identity_namespaces={})
    assert missing_source_paths(mapping, schema) == ["o.c", "gone", "lines[].qty"]


def test_mapping_text_never_becomes_code() -> None:
    hostile = "x'); import os; os.system('false') #\n\"\\".replace(".", "_")  # no dot: that is a path separator
    fields = [
        {"to": f"a.{hostile}", "from": hostile},
        {"to": "b", "value": hostile},
        {"to": "c", "from": "k", "map": {hostile: hostile}, "default": hostile},
        {"to": "d", "when": [{"if": {"path": hostile, "equals": hostile}, "value": 1}], "else": 2},
    ]
    assert convert(fields, {hostile: hostile, "k": "?"}) == {
        "a": {hostile: hostile},
        "b": hostile,
        "c": hostile,
        "d": 1,
    }


def test_a_path_written_whole_and_inside_is_rejected() -> None:
    with pytest.raises(MappingError, match=r"'a\.b' is written whole and also inside \('a\.b\.c'\)"):
        convert([{"to": "a.b", "from": "x"}, {"to": "a.b.c", "from": "y"}], {})
