"""Kubernetes API semantics the emulator needs, free of kmock: `Status` errors, label and
field selectors, merge / strategic-merge / JSON patches, the JSONPath subset of printer
columns, and the protobuf bodies of kubectl's typed clients. See modelgate_emulator.py.
"""

from __future__ import annotations

import base64
import copy
import datetime
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

JSON = dict[str, Any]


# ---------------------------------------------------------------- errors


class ApiError(Exception):
    """A request the API server refuses: rendered as a Kubernetes `Status` object."""

    def __init__(self, code: int, reason: str, message: str, details: JSON | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> JSON:
        status: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            status["details"] = self.details
        return status


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def no_such_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


# ---------------------------------------------------------------- printer columns


def age(timestamp: str | None) -> str:
    """A duration in kubectl's short form (`5s`, `3m12s`, `2h`, `4d`)."""
    if not timestamp:
        return "<unknown>"
    try:
        whole_seconds = re.sub(r"\.\d+Z$", "Z", timestamp)  # MicroTime: `...:05.123456Z`
        then = datetime.datetime.strptime(whole_seconds, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return "<invalid>"
    seconds = int((datetime.datetime.now(datetime.timezone.utc) - then).total_seconds())
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def printer_cell(obj: JSON, column: JSON) -> Any:
    """One cell of a CRD printer column: the first value its JSONPath finds."""
    values: list[Any] = []
    for path in column.get("jsonPath", "").split("|"):  # `a|b`: the first path that finds something
        values = values or jsonpath(obj, path)
    if not values:
        return None
    value = values[0]
    if column.get("type") == "date":
        return age(value) if isinstance(value, str) else None
    if column.get("type") in ("integer", "number", "boolean") and not isinstance(value, (dict, list)):
        return value
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


_JSONPATH_TOKEN = re.compile(r"""\.([^.\[\]]+)|\[(\*|\d+)\]|\[\?\(@\.([^=!<>]+?)\s*==\s*["']([^"']*)["']\)\]""")


def jsonpath(obj: Any, path: str) -> list[Any]:
    """The values a simple JSONPath (`.a.b`, `[*]`, `[0]`, `[?(@.k=="v")]`) selects."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    current = [obj]
    position = 0
    while position < len(path):
        match = _JSONPATH_TOKEN.match(path, position)
        if not match:
            return []
        position = match.end()
        field, index, filter_key, filter_value = match.groups()
        following: list[Any] = []
        for value in current:
            if field is not None and isinstance(value, dict) and field in value:
                following.append(value[field])
            elif index == "*" and isinstance(value, list):
                following.extend(value)
            elif index is not None and index != "*" and isinstance(value, list) and int(index) < len(value):
                following.append(value[int(index)])
            elif filter_key is not None and isinstance(value, list):
                following.extend(item for item in value
                                 if isinstance(item, dict) and str(item.get(filter_key)) == filter_value)
        current = following
    return current


# ---------------------------------------------------------------- helpers: selectors


def _split_requirements(text: str) -> list[str]:
    """Split a selector on the commas that are not inside `in (...)` parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part.strip() for part in parts if part.strip()]


def label_selector(text: str) -> Callable[[dict[str, str]], bool]:
    """A predicate on a label map for a Kubernetes label selector string."""
    checks: list[Callable[[dict[str, str]], bool]] = []
    for requirement in _split_requirements(text):
        set_based = re.fullmatch(r"([^\s!=(),]+)\s+(in|notin)\s+\(([^()]*)\)", requirement)
        if set_based:
            key, operator, values = set_based.group(1), set_based.group(2), {
                v.strip() for v in set_based.group(3).split(",") if v.strip()}
            if operator == "in":
                checks.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                checks.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
            continue
        equality = re.fullmatch(r"([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)", requirement)
        if equality:
            key, operator, value = equality.groups()
            if operator == "!=":
                checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                checks.append(lambda labels, k=key, v=value: labels.get(k) == v)
            continue
        existence = re.fullmatch(r"(!?)\s*([^\s!=(),]+)", requirement)
        if existence:
            negated, key = existence.groups()
            if negated:
                checks.append(lambda labels, k=key: k not in labels)
            else:
                checks.append(lambda labels, k=key: k in labels)
            continue
        raise bad_request(f'unable to parse requirement: "{requirement}"')
    return lambda labels: all(check(labels) for check in checks)


def field_selector(text: str) -> Callable[[JSON], bool]:
    """A predicate on an object for a field selector (`path=value`, `==`, `!=`)."""
    checks: list[Callable[[JSON], bool]] = []
    for requirement in _split_requirements(text):
        match = re.fullmatch(r"([^\s!=]+)\s*(==|=|!=)\s*(.*)", requirement)
        if not match:
            raise bad_request(f'invalid field selector: "{requirement}"')
        path, operator, value = match.groups()

        def field_value(obj: JSON, path: str = path) -> str:
            current: Any = obj
            for part in path.split("."):
                current = current.get(part) if isinstance(current, dict) else None
            if isinstance(current, bool):
                return "true" if current else "false"
            return "" if current is None else str(current)

        if operator == "!=":
            checks.append(lambda obj, f=field_value, v=value: f(obj) != v)
        else:
            checks.append(lambda obj, f=field_value, v=value: f(obj) == v)
    return lambda obj: all(check(obj) for check in checks)


def selector_for(params: dict[str, str]) -> Callable[[JSON], bool]:
    labels = label_selector(params.get("labelSelector") or "")
    fields = field_selector(params.get("fieldSelector") or "")
    return lambda obj: labels((obj.get("metadata") or {}).get("labels") or {}) and fields(obj)


# ---------------------------------------------------------------- helpers: protobuf

# kubectl's typed clients (`kubectl create namespace|secret|configmap|serviceaccount`) send
# protobuf bodies: the 4-byte magic `k8s\0`, then a runtime.Unknown message
# {1: typeMeta {1: apiVersion, 2: kind}, 2: raw bytes of the object}. These schemas decode
# the fields those commands set: field number -> (JSON name, type); a type is a scalar name,
# a nested schema, `[type]` for a repeated field or `{type}` for a map with string keys.
_PB_OBJECT_META: JSON = {
    1: ("name", "string"), 2: ("generateName", "string"), 3: ("namespace", "string"),
    5: ("uid", "string"), 6: ("resourceVersion", "string"), 7: ("generation", "int"),
    11: ("labels", {"string"}), 12: ("annotations", {"string"}), 14: ("finalizers", ["string"]),
}
_PB_SCHEMAS: dict[str, JSON] = {
    "Namespace": {1: ("metadata", _PB_OBJECT_META), 2: ("spec", {1: ("finalizers", ["string"])})},
    "Secret": {1: ("metadata", _PB_OBJECT_META), 2: ("data", {"bytes"}), 3: ("type", "string"),
               4: ("stringData", {"string"}), 5: ("immutable", "bool")},
    "ConfigMap": {1: ("metadata", _PB_OBJECT_META), 2: ("data", {"string"}), 3: ("binaryData", {"bytes"}),
                  4: ("immutable", "bool")},
    "ServiceAccount": {1: ("metadata", _PB_OBJECT_META), 4: ("automountServiceAccountToken", "bool")},
}
_PB_ENVELOPE: JSON = {1: ("typeMeta", {1: ("apiVersion", "string"), 2: ("kind", "string")}), 2: ("raw", "raw")}


def _pb_fields(data: bytes) -> Iterable[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message: varints as ints, the rest as bytes."""
    position = 0

    def varint() -> int:
        nonlocal position
        result = shift = 0
        while True:
            byte = data[position]
            position += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result

    while position < len(data):
        key = varint()
        wire_type = key & 7
        if wire_type == 0:
            yield key >> 3, varint()
        elif wire_type == 2:
            size = varint()
            yield key >> 3, data[position:position + size]
            position += size
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            yield key >> 3, data[position:position + size]
            position += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")


def _pb_value(value: int | bytes, kind: Any) -> Any:
    if isinstance(kind, dict):
        return _pb_message(value, kind) if isinstance(value, bytes) else None
    if kind == "string":
        return value.decode() if isinstance(value, bytes) else None
    if kind == "bytes":
        return base64.b64encode(value).decode() if isinstance(value, bytes) else None
    if kind in ("int", "bool"):
        return (bool(value) if kind == "bool" else value) if isinstance(value, int) else None
    return value  # "raw"


def _pb_message(data: bytes, schema: JSON) -> JSON:
    result: JSON = {}
    for number, value in _pb_fields(data):
        if number not in schema:
            continue  # a field the emulator does not need (timestamps, status, ...)
        name, kind = schema[number]
        if isinstance(kind, list):
            result.setdefault(name, []).append(_pb_value(value, kind[0]))
        elif isinstance(kind, set):
            entry = _pb_message(value, {1: ("key", "string"), 2: ("value", next(iter(kind)))}) if isinstance(value, bytes) else {}
            result.setdefault(name, {})[entry.get("key", "")] = entry.get("value", "")
        else:
            decoded = _pb_value(value, kind)
            if decoded not in ("", None):  # Go encodes unset strings as empty ones
                result[name] = decoded
    return result


def decode_protobuf(raw: bytes) -> JSON:
    """A protobuf request body (of a kind in `_PB_SCHEMAS`) as the JSON object it means."""
    if not raw.startswith(b"k8s\x00"):
        raise bad_request("a protobuf body must start with the k8s magic number")
    try:
        envelope = _pb_message(raw[4:], _PB_ENVELOPE)
        type_meta = envelope.get("typeMeta") or {}
        schema = _PB_SCHEMAS.get(type_meta.get("kind", ""))
        if schema is None:
            raise ApiError(415, "UnsupportedMediaType",
                           f"the emulator cannot decode protobuf {type_meta.get('kind')!r}: send JSON")
        return {**type_meta, **_pb_message(envelope.get("raw") or b"", schema)}
    except (ValueError, IndexError, UnicodeDecodeError) as e:
        raise bad_request(f"the protobuf body cannot be decoded: {e}") from None


# ---------------------------------------------------------------- helpers: patches


class PatchError(Exception):
    """A patch that cannot be applied to the object (answered 422)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, null deletes, the rest replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# Merge keys of lists that strategic merge patch merges item by item (built-in kinds).
_SMP_MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "volumes": "name", "env": "name", "imagePullSecrets": "name", "volumeMounts": "mountPath",
    "volumeDevices": "devicePath", "conditions": "type", "ownerReferences": "uid",
    "hostAliases": "ip", "topologySpreadConstraints": "topologyKey",
}
_SMP_MERGED_PRIMITIVE_LISTS = {"finalizers"}


def strategic_merge_patch(target: Any, patch: Any, field: str | None = None) -> Any:
    """An approximation of strategic merge patch (see the module docstring)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return _strip_directives({k: v for k, v in patch.items() if k != "$patch"})
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [item for item in result.get(name) or [] if item not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(key, result[key], value)
        elif isinstance(value, dict) and value.get("$patch") == "delete":
            result.pop(key, None)
        else:
            result[key] = strategic_merge_patch(result.get(key), value, key)
    return result


def _merge_list(field: str, current: list[Any], patch: list[Any]) -> list[Any]:
    if field in _SMP_MERGED_PRIMITIVE_LISTS:
        return current + [item for item in patch if item not in current]
    merge_key = _SMP_MERGE_KEYS.get(field)
    if field == "ports":  # container ports merge on containerPort, service ports on port
        merge_key = "containerPort" if any(isinstance(p, dict) and "containerPort" in p for p in patch) else "port"
    if merge_key is None or not all(isinstance(item, dict) and merge_key in item for item in patch):
        return _strip_directives([item for item in patch if not (isinstance(item, dict) and item.get("$patch"))])
    merged = [dict(item) if isinstance(item, dict) else item for item in current]
    for item in patch:
        index = next((i for i, existing in enumerate(merged)
                      if isinstance(existing, dict) and existing.get(merge_key) == item[merge_key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del merged[index]
        elif index is None:
            merged.append(_strip_directives(item))
        else:
            merged[index] = strategic_merge_patch(merged[index], item)
    return merged


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise PatchError(f"invalid JSON pointer: {path!r}")
    return [token.replace("~1", "/").replace("~0", "~") for token in path.split("/")[1:]]


def _index(container: list[Any], token: str, *, allow_end: bool) -> int:
    if allow_end and token == "-":
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchError(f"invalid array index: {token!r}")
    index = int(token)
    if index > len(container) or (index == len(container) and not allow_end):
        raise PatchError(f"array index out of range: {index}")
    return index


def _resolve(doc: Any, tokens: list[str]) -> Any:
    current = doc
    for token in tokens:
        if isinstance(current, dict) and token in current:
            current = current[token]
        elif isinstance(current, list):
            current = current[_index(current, token, allow_end=False)]
        else:
            raise PatchError(f"path not found: /{'/'.join(tokens)}")
    return current


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1])
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, tokens[-1], allow_end=True), value)
    else:
        raise PatchError(f"cannot add to a scalar at /{'/'.join(tokens[:-1])}")
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _resolve(doc, tokens[:-1])
    if isinstance(parent, dict) and tokens[-1] in parent:
        return parent.pop(tokens[-1])
    if isinstance(parent, list):
        return parent.pop(_index(parent, tokens[-1], allow_end=False))
    raise PatchError(f"path not found: /{'/'.join(tokens)}")


def json_patch(doc: Any, ops: Iterable[Any]) -> Any:
    """RFC 6902 JSON patch: add, remove, replace, move, copy, test."""
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise PatchError(f"invalid operation: {op!r}")
        name, tokens = op["op"], _pointer(op.get("path"))
        if name in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"{name} operation needs a value")
        if name == "add":
            doc = _add(doc, tokens, copy.deepcopy(op["value"]))
        elif name == "remove":
            _remove(doc, tokens)
        elif name == "replace":
            if not tokens:
                doc = copy.deepcopy(op["value"])
            else:
                _remove(doc, tokens)
                doc = _add(doc, tokens, copy.deepcopy(op["value"]))
        elif name == "move":
            value = _remove(doc, _pointer(op.get("from")))
            doc = _add(doc, tokens, value)
        elif name == "copy":
            doc = _add(doc, tokens, copy.deepcopy(_resolve(doc, _pointer(op.get("from")))))
        elif name == "test":
            if _resolve(doc, tokens) != op["value"]:
                raise PatchError(f"testing value /{'/'.join(tokens)} failed")
        else:
            raise PatchError(f"unknown operation: {name!r}")
    return doc
