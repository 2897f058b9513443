"""A Kubernetes API emulator for Modelgate's end-to-end tests, built on kmock.

`ModelgateEmulator` subclasses kmock's stateful `KubernetesEmulator` (kmock 0.8). kmock
supplies the HTTP server (`kmock.Server`, aiohttp), request parsing and recording, the
in-memory object store with per-object history (`emulator.objects`), the resource registry
(`emulator.resources`, preloaded with kmock's bundled discovery dump of a real cluster), and
its reaction DSL: a reaction a test declares in-process (`emulator['patch', ...] << 500`)
still answers before anything below. Everything else is served here, because kmock's own
handlers answer too little for kube-rs's watcher and for kubectl.

Additions over kmock's `KubernetesEmulator`:

 1. Server-set metadata on create: `resourceVersion` (one global counter, as a string),
    `uid`, `creationTimestamp` (RFC 3339, `Z`), `generation: 1`, `namespace` from the URL,
    `generateName`; `apiVersion`/`kind` filled in; the name must be a DNS-1123 subdomain.
 2. Every write bumps `resourceVersion`; `generation` goes up only when something other
    than `metadata`/`status`/`apiVersion`/`kind` changes (`.spec` for CRs; `.data` for a
    ConfigMap or Secret) or when `deletionTimestamp` gets set. A write that changes nothing
    is a no-op, as on a real API server: no new resourceVersion, no watch event.
 3. The `status` subresource, for every kind whose discovery lists one (CRDs that declare
    it, pods, namespaces, ...): writes to `.../status` (PUT, PATCH of any type) change only
    `.status`; writes to the object itself and creates leave `.status` alone. Namespaces get
    `status.phase: Active`; CRDs get `Established`/`NamesAccepted` conditions.
 4. PUT is an update: the body replaces the object, server-set metadata is kept; a PUT to a
    missing object is 404 (no create-on-update).
 5. PATCH content types: `merge-patch+json` (RFC 7386), `strategic-merge-patch+json`
    (approximated: merge, lists of named items merged by their key, `$patch`,
    `$deleteFromPrimitiveList` and `$setElementOrder` directives understood or dropped),
    `json-patch+json` (RFC 6902: add, remove, replace, move, copy, test),
    `apply-patch+yaml` (server-side apply, simplified: a merge patch, plus each field
    manager owning the leaf paths of its last apply per subresource, so that what a manager
    stops applying is removed unless another manager applied it; JSON or YAML body;
    `fieldManager` required, `force` accepted). An apply to a missing object creates it.
 6. Optimistic concurrency: an update (PUT or any PATCH) whose resulting object carries a
    `metadata.resourceVersion` other than the stored one is `409 Conflict`; DELETE honours
    `preconditions`. Create of an existing name is `409 AlreadyExists`. Errors are
    Kubernetes `Status` objects (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`,
    `BadRequest`, `MethodNotAllowed`, `UnsupportedMediaType`, `Expired`).
 7. `labelSelector` (`a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x,y)`,
    comma-separated) and `fieldSelector` (`=`, `==`, `!=` on `metadata.name`,
    `metadata.namespace` or any dotted path) on list, watch and deletecollection.
 8. Lists are `<Kind>List` with `apiVersion` and `metadata.resourceVersion`, sorted by
    namespace and name; `limit`/`continue` return everything with no continue token.
 9. Watch (`?watch=1|true`) streams newline-delimited `{"type", "object"}` events:
    `resourceVersion` unset or `0` starts with synthetic ADDED events, any other
    resourceVersion replays only the events after it (410 `Expired` once it has left the
    bounded event log); `sendInitialEvents=true` ends the initial ADDED events with a
    BOOKMARK annotated `k8s.io/initial-events-end`; `allowWatchBookmarks` gets a BOOKMARK
    after `bookmark_interval` idle seconds; `timeoutSeconds` ends the stream. A label or
    field selector turns a change into or out of the selection into ADDED or DELETED, as on
    a real server. Deleted objects are sent with their last state.
10. `Accept` negotiation: `as=Table` for lists, single objects and watches (kubectl's
    printer columns: a CRD's `additionalPrinterColumns`; Name, a few kind-specific columns
    and Age for built-in kinds), `as=PartialObjectMetadata[List]` (kube-rs metadata-only
    API and watcher), aggregated discovery (`as=APIGroupDiscoveryList`, v2 and v2beta1) on
    `/api` and `/apis`. Responses are always JSON.
11. Discovery: `/api`, `/api/v1`, `/apis`, `/apis/<group>`, `/apis/<group>/<version>` from
    kmock's bundled resource list (core, apps, coordination.k8s.io, events.k8s.io,
    apiextensions.k8s.io, rbac, ...), plus `/version` (v1.33.0), `/healthz`, `/readyz`,
    `/livez`, and `/openapi/v2`, `/openapi/v3` answering 404 (kubectl then falls back to
    built-in strategic-merge knowledge and JSON merge patches; use `--validate=false`).
12. CRDs: creating a `CustomResourceDefinition` serves its kind (every served version, with
    its status subresource, short names, categories and printer columns, all versions
    sharing the storage version's objects); updating it re-reads it; deleting it deletes
    its objects and stops serving the kind.
13. Finalizers: DELETE of an object with finalizers sets `deletionTimestamp` and keeps it
    until an update removes the last finalizer. Deleting a namespace deletes (or marks)
    the objects in it. Creating in a missing namespace is 404.
14. `dryRun=All` on create, update, patch and delete: validated and answered, not stored.
15. DELETE returns the deleted (or now terminating) object; DELETE on a collection deletes
    what the selectors pick and returns the list.
16. Protobuf request bodies of the kinds `kubectl create namespace|secret|configmap|
    serviceaccount` send (kubectl's typed clients do not speak JSON for these).
17. Kind-specific server behaviour: a Secret's `stringData` is merged into `data` (base64)
    and `type` defaults to `Opaque`; `events.k8s.io/v1` Events and core `v1` Events are one
    resource (fields renamed between the two, as the real API does), so `kubectl get
    events` shows what kube-runtime's `Recorder` publishes.
18. `close_watches()` ends every open watch stream, for a prompt shutdown.
19. Two workarounds for kmock 0.8: requests whose path or body kmock's own parser rejects
    (`/api/v1/namespaces`, binary bodies) are recorded unlabelled instead of failing.

Known gaps (deliberate simplifications):

- Server-side apply is a merge patch with the path ownership of (5): no `managedFields` in
  objects, no ownership conflicts (409) so `force` changes nothing, fields written by
  PUT/PATCH have no owner (an apply never removes them, and never loses ownership to them),
  lists are atomic (an applied list replaces the stored one; no `listType: map` merging).
- No admission, no OpenAPI schema validation, no defaulting, no pruning of unknown fields,
  no CEL (`x-kubernetes-validations`), no immutability rules, no quota, no RBAC (any
  token or none is accepted), no ownerReference garbage collection, no conversion webhooks
  (versions of a CRD differ only in `apiVersion`), no subresources other than `status`
  (`scale`, `log`, `exec`, `eviction` ... are 404), no `/openapi`, no legacy `/watch/`
  paths, no protobuf except the request bodies of (16), no HTTP/2, no TLS.
- Strategic merge patch is approximated (see 5); built-in kinds' merge keys are guessed
  from the field name.
- Every successful write that changes the object emits one MODIFIED (or ADDED/DELETED)
  event; there is no coalescing. Pods are not scheduled or run: nobody sets their status
  except the client (`PATCH .../pods/<name>/status`). Deleting a pod removes it at once.
- Every kind gets `metadata.generation` (a real server sets it only for some kinds).
  Deleting a namespace is immediate (no `Terminating` phase while its objects go).
- Bookmarks carry the global resourceVersion; lists ignore `resourceVersion`/
  `resourceVersionMatch` and always answer the latest state.
- A PUT without `metadata.resourceVersion` is an unconditional update for every kind.
- The event log keeps the last `event_log_limit` events; older resourceVersions get 410.
- kmock records every request it serves; this class trims that record to the
  last `request_history_limit` requests and each object's history to `object_history_limit`
  versions so that a long run stays small.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import copy
import dataclasses
import datetime
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml

from k8s_helpers import (ApiError, PatchError, bad_request, decode_protobuf, json_patch, merge_patch,
                         no_such_path, printer_cell, selector_for, strategic_merge_patch)

JSON = dict[str, Any]
Path = tuple[str, ...]  # a field path in an object, as server-side apply tracks ownership


_kmock_parse_request = kmock.Request.__dict__["_parse"].__func__


async def _parse_request_tolerantly(cls: type[kmock.Request], raw_request: Any, *, id: int = 0) -> kmock.Request:
    """kmock 0.8's request parsing, surviving two inputs that make it raise.

    kmock decodes every body as UTF-8 text (a protobuf body is binary) and its URL parser
    fails on `/api/v1/namespaces` (it expects a name after `namespaces`). Its parse only
    labels requests for kmock's DSL filters; this class routes by the URL itself, so such a
    request is recorded unlabelled (as a non-Kubernetes request) instead of failing.
    """
    try:
        return await _kmock_parse_request(cls, raw_request, id=id)
    except ValueError:  # incl. UnicodeDecodeError
        return cls(id=id, raw_request=raw_request, url=raw_request.url, method=raw_request.method,
                   params=dict(raw_request.query), headers=dict(raw_request.headers),
                   cookies=dict(raw_request.cookies), body=await raw_request.read())


kmock.Request._parse = classmethod(_parse_request_tolerantly)  # type: ignore[method-assign]

# kmock's bundled discovery dump comes from a K3s cluster; these groups are not part of
# Kubernetes itself (K3s add-ons and an aggregated metrics API), so they are not served.
_NOT_SERVED_GROUPS = {"gateway.networking.k8s.io", "metrics.k8s.io"}

# Verbs and kinds of well-known subresources, for discovery (only `status` is served).
_SUBRESOURCE_VERBS = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "finalize": ["update"],
    "approval": ["get", "patch", "update"],
    "ephemeralcontainers": ["get", "patch", "update"],
    "resize": ["get", "patch", "update"],
    "log": ["get"],
    "exec": ["create", "get"],
    "attach": ["create", "get"],
    "portforward": ["create", "get"],
    "proxy": ["create", "delete", "get", "patch", "update"],
    "eviction": ["create"],
    "binding": ["create"],
    "token": ["create"],
}
_SUBRESOURCE_KINDS = {
    "scale": ("autoscaling", "v1", "Scale"),
    "eviction": ("policy", "v1", "Eviction"),
    "binding": ("", "v1", "Binding"),
    "token": ("authentication.k8s.io", "v1", "TokenRequest"),
}
_CRD_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

# Resources that are another resource seen differently: (group, plural) -> storage (group,
# version). A real server keeps `events.k8s.io/v1` Events as core `v1` Events, renaming fields.
_SHARED_STORAGE = {("events.k8s.io", "events"): ("", "v1")}
_EVENT_FIELDS = {  # events.k8s.io/v1 name -> core v1 name
    "regarding": "involvedObject", "note": "message", "reportingController": "reportingComponent",
    "deprecatedSource": "source", "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp", "deprecatedCount": "count",
}

# Table columns of a few built-in kinds (by storage group and plural), between Name and Age.
# `a|b` in a jsonPath: the first of the two paths that finds something.
_BUILTIN_COLUMNS: dict[tuple[str, str], list[JSON]] = {
    ("", "namespaces"): [{"name": "Status", "jsonPath": ".status.phase"}],
    ("", "pods"): [{"name": "Status", "jsonPath": ".status.phase"},
                   {"name": "IP", "jsonPath": ".status.podIP", "priority": 1}],
    ("", "secrets"): [{"name": "Type", "jsonPath": ".type"}],
    ("", "events"): [{"name": "Last Seen", "type": "date", "jsonPath": ".lastTimestamp|.eventTime"},
                     {"name": "Type", "jsonPath": ".type"}, {"name": "Reason", "jsonPath": ".reason"},
                     {"name": "Object", "jsonPath": ".involvedObject.name"},
                     {"name": "Message", "jsonPath": ".message"}],
    ("coordination.k8s.io", "leases"): [{"name": "Holder", "jsonPath": ".spec.holderIdentity"}],
}
_AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
               "description": "Time since the object was created."}

# What a list/watch item of a metadata-only request looks like (kube-rs `metadata_watcher`).
_META_API_VERSION = "meta.k8s.io/v1"

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

SERVER_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0",
    "gitCommit": "60a317eadfcb839692a5ab835d1dc7a2afa4a3a8",
    "gitTreeState": "clean",
    "buildDate": "2025-04-23T13:07:50Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclasses.dataclass(frozen=True)
class Kind:
    """One served resource at one version, as discovery describes it."""

    group: str
    version: str
    plural: str
    kind: str
    singular: str
    namespaced: bool
    verbs: tuple[str, ...]
    short_names: tuple[str, ...]
    categories: tuple[str, ...]
    subresources: frozenset[str]
    storage_version: str  # objects of every served version are stored under this one
    storage_group: str  # differs from `group` only for events.k8s.io Events (stored as core Events)
    list_kind: str
    printer_columns: tuple[JSON, ...] = ()  # a CRD's additionalPrinterColumns

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_api_version(self) -> str:
        group = self.storage_group
        return f"{group}/{self.storage_version}" if group else self.storage_version

    @property
    def storage(self) -> kmock.resource:
        """The key of this kind's objects in `emulator.objects`."""
        return kmock.resource(self.storage_group, self.storage_version, self.plural)

    @property
    def qualified(self) -> str:
        """`plural.group`, as error messages name a resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


def _invalid(kind: "Kind", name: str, message: str) -> ApiError:
    details = {"name": name, "group": kind.group, "kind": kind.kind}
    return ApiError(422, "Invalid", f'{kind.kind} "{name}" is invalid: {message}', details)



@dataclasses.dataclass(frozen=True)
class _CrdServing:
    """What a CRD adds to a served resource beyond kmock's `ResourceInfo`."""

    crd: str
    storage_version: str
    list_kind: str
    printer_columns: tuple[JSON, ...]


@dataclasses.dataclass(frozen=True)
class _Logged:
    """One entry of the event log that watches replay: the change made at `rv`."""

    rv: int
    storage: kmock.resource
    namespace: str | None
    name: str
    type: str  # ADDED, MODIFIED, DELETED
    old: JSON | None
    new: JSON


@dataclasses.dataclass(frozen=True)
class _Target:
    """A resource URL: `/api[s]/<gv>/[namespaces/<ns>/]<plural>[/<name>[/<subresource>]]`."""

    kind: Kind
    namespace: str | None
    name: str | None
    subresource: str | None


@attrs.define(kw_only=True)
class ModelgateEmulator(kmock.KubernetesEmulator):
    """kmock's `KubernetesEmulator` with the API semantics kube-rs and kubectl rely on.

    Run it with `kmock.Server(emulator, host=..., port=...)` inside `async with emulator:`
    (see `serve.py`). Reactions declared with kmock's DSL take precedence over this class.
    """

    bookmark_interval: float = 30.0  # idle seconds before a watch gets a BOOKMARK
    default_watch_timeout: float = 1800.0  # when a watch has no timeoutSeconds
    event_log_limit: int = 50_000  # events kept for resuming watches (older: 410)
    object_history_limit: int = 50  # versions kept per object in `emulator.objects`
    request_history_limit: int = 5_000  # requests kept in kmock's request record
    aggregated_discovery: bool = True  # answer `as=APIGroupDiscoveryList` (else plain lists)

    _rv: int = attrs.field(default=1, init=False)
    _log: list[_Logged] = attrs.field(factory=list, init=False)
    _changed: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)
    _closing: bool = attrs.field(default=False, init=False)
    _crd_served: dict[kmock.resource, _CrdServing] = attrs.field(factory=dict, init=False)
    # Server-side apply: object key -> (field manager, subresource) -> the paths it applied.
    _applied: dict[tuple[Any, ...], dict[tuple[str, str], frozenset[Path]]] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        # Deliberately not calling kmock's: it installs fallback reactions for discovery and
        # objects that would answer every request before `_handle` gets to `_serve`.
        self.resources.load_bundled()
        for resource in list(self.resources):
            if resource.group in _NOT_SERVED_GROUPS:
                del self.resources[resource]

    def close_watches(self) -> None:
        """End every open watch stream (and those that start later), as a stopping server does."""
        self._closing = True
        self._changed.set()
        self._changed = asyncio.Event()

    # ---------------------------------------------------------------- request entry point

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # Keep kmock's request record bounded: a long end-to-end run makes many requests.
        if len(self._requests) > self.request_history_limit:
            del self._requests[: len(self._requests) - self.request_history_limit // 2]
        try:
            # Reactions declared through kmock's DSL answer first (kmock.RawHandler's logic;
            # KubernetesEmulator._handle is skipped: it would apply writes a second time).
            return await kmock.RawHandler._handle(self, request)
        except NotImplementedError:  # kmock: no declared reaction matches the request
            pass
        try:
            return await self._serve(request)
        except ApiError as e:
            return _json(e.status(), status=e.code)

    async def _serve(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        path = request.url.path
        method = str(request.method.value).upper()
        parts = [part for part in path.split("/") if part]

        if not parts:
            return _json({"paths": self._root_paths()})
        if parts[0] in ("healthz", "livez", "readyz"):
            return aiohttp.web.Response(text="ok", content_type="text/plain")
        if parts == ["version"]:
            return _json(SERVER_VERSION)
        if parts[0] == "openapi":
            raise no_such_path()
        if parts[0] not in ("api", "apis"):
            raise no_such_path()

        if parts == ["api"] or parts == ["apis"]:
            self._require_get(method)
            aggregated = self.aggregated_discovery and _aggregated_discovery_version(_header(request, "Accept"))
            core = parts == ["api"]
            if aggregated:
                return _json(self._aggregated_discovery(core, aggregated), content_type=(
                    f"application/json;g=apidiscovery.k8s.io;v={aggregated};as=APIGroupDiscoveryList"))
            return _json(self._api_versions(request) if core else self._api_group_list())

        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) == 2:  # /apis/<group>
            self._require_get(method)
            return _json(self._api_group(parts[1]))
        else:
            group, version, rest = parts[1], parts[2], parts[3:]

        if not rest:  # /api/v1, /apis/<group>/<version>
            self._require_get(method)
            return _json(self._api_resource_list(group, version))

        target = self._target(group, version, rest)
        return await self._serve_resource(request, method, target)

    @staticmethod
    def _require_get(method: str) -> None:
        if method != "GET":
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _target(self, group: str, version: str, rest: list[str]) -> _Target:
        namespace: str | None = None
        # `namespaces/<ns>/<plural>...`, but `namespaces/<name>[/status|/finalize]` is a namespace.
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        kind = self.kind(group, version, rest[0])
        if kind is None or len(rest) > 3 or (namespace is not None and not kind.namespaced):
            raise no_such_path()
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource is not None and subresource != "status":
            raise no_such_path()
        if subresource == "status" and not kind.has_status:
            raise no_such_path()
        if name is not None and kind.namespaced and namespace is None:
            raise no_such_path()
        return _Target(kind, namespace, name, subresource)

    async def _serve_resource(self, request: kmock.Request, method: str, target: _Target) -> aiohttp.web.StreamResponse:
        params = request.params
        kind, namespace, name = target.kind, target.namespace, target.name
        dry_run = params.get("dryRun") == "All"
        accept = _header(request, "Accept") or ""

        if method == "GET" and params.get("watch") in ("1", "true", "True"):
            return await self._watch(request, kind, namespace, name, accept)
        if name is None:
            if method == "GET":
                return _json(self._list_response(kind, namespace, params, accept))
            if method == "POST":
                if kind.namespaced and namespace is None:
                    raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
                body = _parse_body(request)
                created = self.create(kind, namespace, body, dry_run=dry_run)
                return _json(self._present(kind, created, accept), status=201)
            if method == "DELETE":
                deleted = self.delete_collection(kind, namespace, params, dry_run=dry_run)
                return _json(self._list_of(kind, deleted, accept))
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

        status_only = target.subresource == "status"
        if method == "GET":
            obj = self.get(kind, namespace, name)
            if obj is None:
                raise self._not_found(kind, name)
            if "as=Table" in accept:  # `kubectl get <kind> <name>`
                list_meta = {"resourceVersion": obj["metadata"]["resourceVersion"]}
                return _json(self._table(kind, [obj], list_meta, params.get("includeObject", "Metadata")))
            return _json(self._present(kind, obj, accept))
        if method == "PUT":
            body = _parse_body(request)
            updated = self.update(kind, namespace, name, body, status_only=status_only, dry_run=dry_run)
            return _json(self._present(kind, updated, accept))
        if method == "PATCH":
            content_type = (_header(request, "Content-Type") or "").split(";")[0].strip().lower()
            patched, created = self.patch(kind, namespace, name, content_type, request.body, params,
                                          status_only=status_only, dry_run=dry_run)
            return _json(self._present(kind, patched, accept), status=201 if created else 200)
        if method == "DELETE" and not status_only:
            is_protobuf = "protobuf" in (_header(request, "Content-Type") or "")
            options = None if is_protobuf else _parse_optional_json(request.body)
            deleted = self.delete(kind, namespace, name, options, dry_run=dry_run)
            return _json(self._present(kind, deleted, accept))
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    # ---------------------------------------------------------------- resource registry

    def kind(self, group: str, version: str, plural: str) -> Kind | None:
        """The served resource `group/version/plural`, or None."""
        resource = kmock.resource(group, version, plural)
        if resource not in self.resources:
            return None
        info = self.resources[resource]
        serving = self._crd_served.get(resource)
        kind_name = info.kind or plural.capitalize()
        return Kind(
            group=group,
            version=version,
            plural=plural,
            kind=kind_name,
            singular=info.singular or kind_name.lower(),
            namespaced=info.namespaced if info.namespaced is not None else True,
            verbs=tuple(sorted(info.verbs)),
            short_names=tuple(sorted(info.shortnames)),
            categories=tuple(sorted(info.categories)),
            subresources=frozenset(info.subresources),
            storage_version=_SHARED_STORAGE.get((group, plural), ("", serving.storage_version if serving else version))[1],
            storage_group=_SHARED_STORAGE.get((group, plural), (group, ""))[0],
            list_kind=serving.list_kind if serving else f"{kind_name}List",
            printer_columns=serving.printer_columns if serving else (),
        )

    def kinds(self) -> list[Kind]:
        """Every served resource, in discovery order."""
        found = [self.kind(r.group, r.version, r.plural) for r in self.resources]
        return [kind for kind in found if kind is not None]

    def kind_of(self, api_version: str, kind_name: str) -> Kind | None:
        """The served resource of objects with this `apiVersion` and `kind`."""
        group, _, version = api_version.rpartition("/")
        for kind in self.kinds():
            if kind.group == group and kind.version == version and kind.kind == kind_name:
                return kind
        return None

    def _groups(self) -> dict[str, list[str]]:
        """Served group -> its versions, most preferred first."""
        groups: dict[str, list[str]] = {}
        for resource in self.resources:
            versions = groups.setdefault(resource.group, [])
            if resource.version not in versions:
                versions.append(resource.version)
        for versions in groups.values():
            versions.sort(key=_version_priority, reverse=True)
        return groups

    def _sync_crd(self, crd_name: str, crd: JSON | None) -> None:
        """Serve what the CRD `crd_name` defines now (nothing once it is deleted)."""
        for resource, serving in list(self._crd_served.items()):
            if serving.crd == crd_name:
                del self._crd_served[resource]
                del self.resources[resource]
        if crd is None:
            return
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        group, plural, kind_name = spec.get("group"), names.get("plural"), names.get("kind")
        versions = spec.get("versions") or []
        storage = next((v.get("name") for v in versions if v.get("storage")), None)
        if not (group and plural and kind_name and storage):
            return
        for version in versions:
            if not version.get("served", True):
                continue
            resource = kmock.resource(group, version["name"], plural)
            self.resources[resource] = kmock.ResourceInfo(
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                kind=kind_name,
                singular=names.get("singular") or kind_name.lower(),
                verbs=_CRD_VERBS,
                shortnames=names.get("shortNames") or [],
                categories=names.get("categories") or [],
                subresources=[sub for sub in (version.get("subresources") or {}) if sub in ("status", "scale")],
            )
            self._crd_served[resource] = _CrdServing(
                crd=crd_name,
                storage_version=storage,
                list_kind=names.get("listKind") or f"{kind_name}List",
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
            )

    # ---------------------------------------------------------------- discovery documents

    def _root_paths(self) -> list[str]:
        paths = {"/api", "/api/v1", "/apis", "/version", "/healthz", "/livez", "/readyz"}
        for group, versions in self._groups().items():
            if group:
                paths.add(f"/apis/{group}")
                paths.update(f"/apis/{group}/{version}" for version in versions)
        return sorted(paths)

    def _api_versions(self, request: kmock.Request) -> JSON:
        host = request.url.host or "127.0.0.1"
        port = request.url.port
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": f"{host}:{port}"}],
        }

    @staticmethod
    def _group_document(group: str, versions: list[str]) -> JSON:
        refs = [{"groupVersion": f"{group}/{version}", "version": version} for version in versions]
        return {"name": group, "versions": refs, "preferredVersion": refs[0]}

    def _api_group_list(self) -> JSON:
        groups = [self._group_document(g, vs) for g, vs in self._groups().items() if g]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _api_group(self, group: str) -> JSON:
        versions = self._groups().get(group)
        if not group or not versions:
            raise no_such_path()
        return {"kind": "APIGroup", "apiVersion": "v1", **self._group_document(group, versions)}

    def _api_resource_list(self, group: str, version: str) -> JSON:
        kinds = [k for k in self.kinds() if k.group == group and k.version == version]
        if not kinds:
            raise no_such_path()
        resources: list[JSON] = []
        for kind in kinds:
            entry: JSON = {
                "name": kind.plural,
                "singularName": kind.singular,
                "namespaced": kind.namespaced,
                "kind": kind.kind,
                "verbs": list(kind.verbs),
            }
            if kind.short_names:
                entry["shortNames"] = list(kind.short_names)
            if kind.categories:
                entry["categories"] = list(kind.categories)
            resources.append(entry)
            for sub in sorted(kind.subresources):
                sub_group, sub_version, sub_kind = _SUBRESOURCE_KINDS.get(sub, (None, None, kind.kind))
                sub_entry: JSON = {
                    "name": f"{kind.plural}/{sub}",
                    "singularName": "",
                    "namespaced": kind.namespaced,
                    "kind": sub_kind,
                    "verbs": _SUBRESOURCE_VERBS.get(sub, ["get"]),
                }
                if sub_group is not None:
                    sub_entry.update(group=sub_group, version=sub_version)
                resources.append(sub_entry)
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}

    def _aggregated_discovery(self, core: bool, discovery_version: str) -> JSON:
        items: list[JSON] = []
        kinds = self.kinds()
        for group, versions in self._groups().items():
            if (group == "") != core:
                continue
            version_docs = []
            for version in versions:
                resources = []
                for kind in (k for k in kinds if k.group == group and k.version == version):
                    response_kind = {"group": group, "version": version, "kind": kind.kind}
                    resources.append({
                        "resource": kind.plural,
                        "responseKind": response_kind,
                        "scope": "Namespaced" if kind.namespaced else "Cluster",
                        "singularResource": kind.singular,
                        "verbs": list(kind.verbs),
                        "shortNames": list(kind.short_names),
                        "categories": list(kind.categories),
                        "subresources": [
                            {
                                "subresource": sub,
                                "responseKind": _subresource_response_kind(sub, response_kind),
                                "verbs": _SUBRESOURCE_VERBS.get(sub, ["get"]),
                            }
                            for sub in sorted(kind.subresources)
                        ],
                    })
                version_docs.append({"version": version, "resources": resources, "freshness": "Current"})
            items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": version_docs})
        return {
            "kind": "APIGroupDiscoveryList",
            "apiVersion": f"apidiscovery.k8s.io/{discovery_version}",
            "metadata": {},
            "items": items,
        }

    # ---------------------------------------------------------------- object store

    def _key(self, kind: Kind, namespace: str | None, name: str) -> tuple[kmock.resource, str | None, str]:
        return kind.storage, namespace if kind.namespaced else None, name

    def get(self, kind: Kind, namespace: str | None, name: str) -> JSON | None:
        """The stored object (do not mutate it), or None."""
        key = self._key(kind, namespace, name)
        if key not in self.objects:
            return None
        obj = self.objects[key]
        return None if obj.deleted else obj.raw

    def list_objects(self, kind: Kind, namespace: str | None = None) -> list[JSON]:
        """Stored objects of a kind (in one namespace, or all), sorted by namespace and name."""
        found = []
        for (resource, obj_namespace, name), obj in self.objects.items():
            if resource == kind.storage and not obj.deleted and (namespace is None or obj_namespace == namespace):
                found.append(((obj_namespace or "", name), obj.raw))
        return [obj for _, obj in sorted(found, key=lambda pair: pair[0])]

    def _commit(self, kind: Kind, event: str, old: JSON | None, new: JSON) -> JSON:
        """Store a change under the next resourceVersion and log it for watches."""
        self._rv += 1
        new["metadata"]["resourceVersion"] = str(self._rv)
        meta = new["metadata"]
        key = self._key(kind, meta.get("namespace"), meta["name"])
        if key not in self.objects:
            self.objects[key] = new
        else:
            history = self.objects[key].history
            history.append(new)
            if event == "DELETED":
                history.append(None)  # kmock's soft-deletion marker
            if len(history) > self.object_history_limit:
                del history[: len(history) - self.object_history_limit]
        if event == "DELETED":
            self._applied.pop(key, None)
        self._log.append(_Logged(self._rv, kind.storage, key[1], key[2], event, old, new))
        if len(self._log) > self.event_log_limit:
            del self._log[: len(self._log) - self.event_log_limit]
        # Wake every watch: they wait on the event object they saw before this change.
        self._changed.set()
        self._changed = asyncio.Event()
        return new

    @staticmethod
    def _not_found(kind: Kind, name: str) -> ApiError:
        details = {"name": name, "group": kind.group, "kind": kind.plural}
        return ApiError(404, "NotFound", f'{kind.qualified} "{name}" not found', details)

    @staticmethod
    def _conflict(kind: Kind, name: str, why: str) -> ApiError:
        details = {"name": name, "group": kind.group, "kind": kind.plural}
        message = f'Operation cannot be fulfilled on {kind.qualified} "{name}": {why}'
        return ApiError(409, "Conflict", message, details)

    # ---------------------------------------------------------------- writes

    def create(self, kind: Kind, namespace: str | None, body: Any, *, dry_run: bool = False) -> JSON:
        """Create an object from a request body; `namespace` comes from the URL (or None)."""
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be an object")
        self._check_type(kind, body)
        obj = copy.deepcopy(self._to_storage(kind, body))
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")

        if kind.namespaced:
            body_namespace = meta.get("namespace")
            if namespace and body_namespace and body_namespace != namespace:
                raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
            namespace = namespace or body_namespace
            if not namespace:
                raise bad_request("the namespace of the object is missing")
            if self.get(self._namespaces(), None, namespace) is None:
                raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                               {"name": namespace, "kind": "namespaces"})
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)

        name = meta.get("name")
        if not name and meta.get("generateName"):
            name = meta["generateName"] + "".join(secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        if not name:
            raise _invalid(kind, "", "metadata.name: Required value: name or generateName is required")
        self._check_name(kind, name)
        meta["name"] = name
        if self.get(kind, namespace, name) is not None:
            details = {"name": name, "group": kind.group, "kind": kind.plural}
            raise ApiError(409, "AlreadyExists", f'{kind.qualified} "{name}" already exists', details)

        for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"):
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        obj["apiVersion"], obj["kind"] = kind.storage_api_version, kind.kind
        if kind.has_status:
            obj.pop("status", None)
        self._server_side_fields(kind, obj)
        if dry_run:
            meta["resourceVersion"] = str(self._rv)
            return obj
        created = self._commit(kind, "ADDED", None, obj)
        self._after_write(kind, created)
        return created

    def update(self, kind: Kind, namespace: str | None, name: str, body: Any, *,
               status_only: bool = False, dry_run: bool = False) -> JSON:
        """PUT: replace the object (or only its status) with the body."""
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be an object")
        self._check_type(kind, body)
        body_name = (body.get("metadata") or {}).get("name")
        if body_name and body_name != name:
            raise bad_request(f"the name of the object ({body_name}) does not match the name on the URL ({name})")
        return self._write(kind, namespace, name, lambda old: copy.deepcopy(body),
                           status_only=status_only, dry_run=dry_run)

    def patch(self, kind: Kind, namespace: str | None, name: str, content_type: str, raw: bytes,
              params: dict[str, str], *, status_only: bool = False, dry_run: bool = False) -> tuple[JSON, bool]:
        """PATCH of any supported content type; returns the object and whether it was created."""
        if content_type == "application/apply-patch+yaml":
            doc = _parse_json_or_yaml(raw)
            if not isinstance(doc, dict):
                raise bad_request("the apply body must be an object")
            if not params.get("fieldManager"):
                raise bad_request("PATCH requests with apply content type must have a fieldManager query parameter")
            if not doc.get("apiVersion") or not doc.get("kind"):
                raise bad_request("invalid object type: apiVersion and kind must be set in an apply body")
            self._check_type(kind, doc)
            doc_name = (doc.get("metadata") or {}).get("name")
            if doc_name and doc_name != name:
                raise bad_request(f"the name of the object ({doc_name}) does not match the name on the URL ({name})")
            return self._apply(kind, namespace, name, doc, params["fieldManager"],
                               status_only=status_only, dry_run=dry_run)
        make_new: Callable[[JSON], Any]
        if content_type == "application/merge-patch+json":
            doc = _parse_json(raw)
            make_new = lambda old: merge_patch(old, doc)
        elif content_type == "application/strategic-merge-patch+json":
            doc = _parse_json(raw)
            make_new = lambda old: strategic_merge_patch(old, doc)
        elif content_type == "application/json-patch+json":
            ops = _parse_json(raw)
            if not isinstance(ops, list):
                raise bad_request("a JSON patch must be a list of operations")
            make_new = lambda old: json_patch(old, ops)
        else:
            raise ApiError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - accepted media types include: '
                           f'application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, '
                           f'application/strategic-merge-patch+json (got "{content_type}")')
        return self._write(kind, namespace, name, make_new, status_only=status_only, dry_run=dry_run), False

    def _apply(self, kind: Kind, namespace: str | None, name: str, doc: JSON, manager: str, *,
               status_only: bool, dry_run: bool) -> tuple[JSON, bool]:
        """Server-side apply, simplified: a merge patch plus field ownership by path.

        Each field manager owns the leaf paths of its last apply (per subresource); the
        paths it applied before and leaves out now are removed unless another manager's
        apply has them. Fields written by other kinds of requests have no owner.
        """
        subresource = "status" if status_only else ""
        paths = frozenset(p for p in _leaf_paths(doc) if (p[0] == "status") == status_only
                          and p[0] not in ("apiVersion", "kind") and p[:2] not in (("metadata", "name"), ("metadata", "namespace")))
        key = self._key(kind, namespace, name)
        if self.get(kind, namespace, name) is None:
            if status_only:
                raise self._not_found(kind, name)
            body = copy.deepcopy(doc)
            body.setdefault("metadata", {})["name"] = name
            created = self.create(kind, namespace, body, dry_run=dry_run)
            if not dry_run:
                self._applied[key] = {(manager, subresource): paths}
            return created, True

        owners = self._applied.get(key, {})
        others = frozenset().union(*(owned for who, owned in owners.items() if who != (manager, subresource)))
        released = owners.get((manager, subresource), frozenset()) - paths - others

        def make_new(old: JSON) -> JSON:
            new = merge_patch(old, doc)
            for path in sorted(released, key=len, reverse=True):
                if not any(p[:len(path)] == path for p in paths):  # not now an object with applied fields
                    _remove_path(new, path)
            return new

        applied = self._write(kind, namespace, name, make_new, status_only=status_only, dry_run=dry_run)
        if not dry_run:
            self._applied.setdefault(key, {})[(manager, subresource)] = paths
        return applied, False

    def _write(self, kind: Kind, namespace: str | None, name: str, make_new: Callable[[JSON], Any], *,
               status_only: bool, dry_run: bool) -> JSON:
        """Update an existing object to `make_new(copy of it)`, with the API's rules."""
        old = self.get(kind, namespace, name)
        if old is None:
            raise self._not_found(kind, name)
        try:
            candidate = self._to_storage(kind, make_new(copy.deepcopy(self._from_storage(kind, old))))
        except PatchError as e:
            raise ApiError(422, "Invalid", str(e)) from None
        if not isinstance(candidate, dict):
            raise bad_request("the patched object must be an object")
        candidate_meta = candidate.get("metadata") or {}
        if not isinstance(candidate_meta, dict):
            raise bad_request("metadata must be an object")
        wanted_rv = candidate_meta.get("resourceVersion")
        if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
            raise self._conflict(kind, name, "the object has been modified; please apply your changes to the latest version and try again")

        old_meta = old["metadata"]
        if status_only:
            new = copy.deepcopy(old)
            if "status" in candidate:
                new["status"] = candidate["status"]
            else:
                new.pop("status", None)
        else:
            new = candidate
            new.pop("status", None)
            if kind.has_status and "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            elif not kind.has_status and "status" in candidate:
                new["status"] = candidate["status"]
            meta = dict(candidate_meta)
            for field in ("managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds", "generateName"):
                meta.pop(field, None)
            for field in ("uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds", "generateName"):
                if field in old_meta:
                    meta[field] = old_meta[field]
            meta["name"] = name
            if kind.namespaced:
                meta["namespace"] = old_meta["namespace"]
            else:
                meta.pop("namespace", None)
            new["metadata"] = meta
            self._check_metadata(kind, name, meta)
        new["apiVersion"], new["kind"] = kind.storage_api_version, kind.kind
        new["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        if _spec_of(new) != _spec_of(old):
            new["metadata"]["generation"] = int(old_meta.get("generation", 1)) + 1
        self._server_side_fields(kind, new)

        if new == old:  # nothing changed: no new resourceVersion, no event
            return old
        finalized = new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers")
        if dry_run:
            return new
        if finalized:  # the last finalizer is gone: the pending deletion happens now
            return self._remove(kind, old, new)
        updated = self._commit(kind, "MODIFIED", old, new)
        self._after_write(kind, updated)
        return updated

    def delete(self, kind: Kind, namespace: str | None, name: str, options: JSON | None = None, *,
               dry_run: bool = False) -> JSON:
        """DELETE: remove the object, or mark it for deletion while it has finalizers."""
        old = self.get(kind, namespace, name)
        if old is None:
            raise self._not_found(kind, name)
        preconditions = (options or {}).get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != old["metadata"].get("uid"):
            raise self._conflict(kind, name, f'Precondition failed: UID in precondition: {preconditions["uid"]}, UID in object meta: {old["metadata"].get("uid")}')
        if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise self._conflict(kind, name, f'Precondition failed: ResourceVersion in precondition: {preconditions["resourceVersion"]}, ResourceVersion in object meta: {old["metadata"]["resourceVersion"]}')
        if old["metadata"].get("finalizers"):
            if old["metadata"].get("deletionTimestamp"):
                return old
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = _now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
            return new if dry_run else self._commit(kind, "MODIFIED", old, new)
        if dry_run:
            return old
        return self._remove(kind, old, copy.deepcopy(old))

    def delete_collection(self, kind: Kind, namespace: str | None, params: dict[str, str], *,
                          dry_run: bool = False) -> list[JSON]:
        selector = self._selector(kind, params)
        deleted = []
        for obj in self.list_objects(kind, namespace):
            if selector(obj):
                meta = obj["metadata"]
                deleted.append(self.delete(kind, meta.get("namespace"), meta["name"], dry_run=dry_run))
        return deleted

    def _remove(self, kind: Kind, old: JSON, final: JSON) -> JSON:
        """Delete the object for good: a DELETED event with its last state."""
        removed = self._commit(kind, "DELETED", old, final)
        meta = removed["metadata"]
        if kind.group == "" and kind.plural == "namespaces":
            storages = {other.storage: other for other in self.kinds() if other.namespaced}
            for other in storages.values():
                for obj in self.list_objects(other, meta["name"]):
                    self.delete(other, meta["name"], obj["metadata"]["name"])
        if kind.group == "apiextensions.k8s.io" and kind.plural == "customresourcedefinitions":
            served = [self.kind(r.group, r.version, r.plural) for r, s in self._crd_served.items() if s.crd == meta["name"]]
            storages = {crd_kind.storage: crd_kind for crd_kind in served if crd_kind is not None}
            for crd_kind in storages.values():  # its objects go, finalizers or not
                for obj in self.list_objects(crd_kind):
                    self._commit(crd_kind, "DELETED", obj, copy.deepcopy(obj))
            self._sync_crd(meta["name"], None)
        return removed

    # ---------------------------------------------------------------- write helpers

    def _namespaces(self) -> Kind:
        kind = self.kind("", "v1", "namespaces")
        assert kind is not None
        return kind

    def _check_type(self, kind: Kind, obj: JSON) -> None:
        api_version, kind_name = obj.get("apiVersion"), obj.get("kind")
        if kind_name and kind_name != kind.kind:
            raise bad_request(f"the kind of the object ({kind_name}) does not match the URL ({kind.kind})")
        if api_version and api_version not in (kind.api_version, kind.storage_api_version):
            group = api_version.rpartition("/")[0]
            if group != kind.group:
                raise bad_request(f"the apiVersion of the object ({api_version}) does not match the URL ({kind.api_version})")

    def _check_name(self, kind: Kind, name: str) -> None:
        if kind.group == "rbac.authorization.k8s.io":  # path segment names: `system:...`
            valid = name not in (".", "..") and "/" not in name and "%" not in name
        else:
            valid = len(name) <= 253 and bool(_DNS_SUBDOMAIN.fullmatch(name))
        if not valid:
            raise _invalid(kind, name, f'metadata.name: Invalid value: "{name}": a lowercase RFC 1123 subdomain '
                                       "must consist of lower case alphanumeric characters, '-' or '.', and must "
                                       "start and end with an alphanumeric character")

    def _check_metadata(self, kind: Kind, name: str, meta: JSON) -> None:
        for field in ("labels", "annotations"):
            value = meta.get(field)
            if value is not None and (not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())):
                raise _invalid(kind, name, f"metadata.{field}: Invalid value: must be a map of strings")

    def _server_side_fields(self, kind: Kind, obj: JSON) -> None:
        """Fields the real API server sets on its own for a few kinds."""
        if kind.group == "" and kind.plural == "secrets":
            string_data = obj.pop("stringData", None) or {}
            if string_data:  # write-only: merged into `data`, base64-encoded
                data = dict(obj.get("data") or {})
                data.update({k: base64.b64encode(str(v).encode()).decode() for k, v in string_data.items()})
                obj["data"] = data
            if not obj.get("type"):
                obj["type"] = "Opaque"
        elif kind.group == "" and kind.plural == "namespaces":
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            phase = "Terminating" if obj["metadata"].get("deletionTimestamp") else "Active"
            obj["status"] = {**(obj.get("status") or {}), "phase": phase}
        elif kind.group == "apiextensions.k8s.io" and kind.plural == "customresourcedefinitions":
            spec = obj.get("spec") or {}
            names = dict(spec.get("names") or {})
            group, plural = spec.get("group"), names.get("plural")
            if not group or not plural or obj["metadata"]["name"] != f"{plural}.{group}":
                raise _invalid(kind, obj["metadata"]["name"], "metadata.name: Invalid value: must be spec.names.plural+\".\"+spec.group")
            storage = [v.get("name") for v in spec.get("versions") or [] if v.get("storage")]
            if len(storage) != 1:
                raise _invalid(kind, obj["metadata"]["name"], "spec.versions: Invalid value: must have exactly one version marked as storage version")
            names.setdefault("singular", str(names.get("kind", "")).lower())
            names.setdefault("listKind", f"{names.get('kind')}List")
            conditions = (obj.get("status") or {}).get("conditions") or [{}]
            stamp = conditions[0].get("lastTransitionTime") or _now()
            obj["status"] = {
                "acceptedNames": names,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": stamp},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted", "lastTransitionTime": stamp},
                ],
                "storedVersions": storage,
            }

    def _after_write(self, kind: Kind, obj: JSON) -> None:
        if kind.group == "apiextensions.k8s.io" and kind.plural == "customresourcedefinitions":
            self._sync_crd(obj["metadata"]["name"], obj)

    # ---------------------------------------------------------------- reads

    @staticmethod
    def _to_storage(kind: Kind, obj: Any) -> Any:
        """An object as a client of `kind` wrote it, in the shape it is stored in."""
        if kind.group != kind.storage_group and isinstance(obj, dict):  # events.k8s.io Events
            return {_EVENT_FIELDS.get(k, k): v for k, v in obj.items()}
        return obj

    @staticmethod
    def _from_storage(kind: Kind, obj: JSON) -> JSON:
        """A stored object in the shape clients of `kind` see."""
        if kind.group != kind.storage_group:
            renamed = {core: new for new, core in _EVENT_FIELDS.items()}
            return {renamed.get(k, k): v for k, v in obj.items()}
        return obj

    @staticmethod
    def _selector(kind: Kind, params: dict[str, str]) -> Callable[[JSON], bool]:
        """The list/watch selector of a request, on stored objects."""
        if kind.group != kind.storage_group and params.get("fieldSelector"):  # `regarding.name=...`
            fields = re.sub(r"(^|,)\s*([A-Za-z]+)", lambda m: m.group(1) + _EVENT_FIELDS.get(m.group(2), m.group(2)),
                            params["fieldSelector"])
            params = {**params, "fieldSelector": fields}
        return selector_for(params)

    def _present(self, kind: Kind, obj: JSON, accept: str = "") -> JSON:
        """An object as a response shows it: at the requested version, maybe metadata only."""
        if "as=PartialObjectMetadata" in accept:
            return {"kind": "PartialObjectMetadata", "apiVersion": _META_API_VERSION, "metadata": obj["metadata"]}
        obj = self._from_storage(kind, obj)
        if obj.get("apiVersion") != kind.api_version:
            obj = {**obj, "apiVersion": kind.api_version}
        return obj

    def _list_of(self, kind: Kind, items: list[JSON], accept: str, params: dict[str, str] | None = None) -> JSON:
        meta = {"resourceVersion": str(self._rv)}
        if "as=Table" in accept:
            return self._table(kind, items, meta, (params or {}).get("includeObject", "Metadata"))
        if "as=PartialObjectMetadata" in accept:  # also matches `...MetadataList`
            return {
                "kind": "PartialObjectMetadataList",
                "apiVersion": _META_API_VERSION,
                "metadata": meta,
                "items": [self._present(kind, obj, "as=PartialObjectMetadata") for obj in items],
            }
        return {
            "kind": kind.list_kind,
            "apiVersion": kind.api_version,
            "metadata": meta,
            "items": [self._present(kind, obj) for obj in items],
        }

    def _list_response(self, kind: Kind, namespace: str | None, params: dict[str, str], accept: str) -> JSON:
        selector = self._selector(kind, params)
        items = [obj for obj in self.list_objects(kind, namespace) if selector(obj)]
        return self._list_of(kind, items, accept, params)

    def _table(self, kind: Kind, items: list[JSON], list_meta: JSON, include_object: str) -> JSON:
        """A `meta.k8s.io/v1` Table, as `kubectl get` asks for it."""
        printer_columns = list(kind.printer_columns) or [
            *_BUILTIN_COLUMNS.get((kind.storage_group, kind.plural), []), _AGE_COLUMN]
        name_column = {"name": "Name", "type": "string", "format": "name", "priority": 0,
                       "description": "Name must be unique within a namespace."}
        columns = [name_column] + [
            {
                "name": column.get("name", ""),
                "type": column.get("type", "string"),
                "format": column.get("format", ""),
                "priority": column.get("priority", 0),
                "description": column.get("description", ""),
            }
            for column in printer_columns
        ]
        rows = []
        for obj in items:
            row: JSON = {"cells": [obj["metadata"]["name"], *(printer_cell(obj, column) for column in printer_columns)]}
            if include_object == "Object":
                row["object"] = self._present(kind, obj)
            elif include_object != "None":
                row["object"] = self._present(kind, obj, "as=PartialObjectMetadata")
            rows.append(row)
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
                "columnDefinitions": columns, "rows": rows}

    # ---------------------------------------------------------------- watch

    async def _watch(self, request: kmock.Request, kind: Kind, namespace: str | None, name: str | None,
                     accept: str) -> aiohttp.web.StreamResponse:
        params = dict(request.params)
        if name is not None:  # a watch on one object: the same as a field selector on its name
            extra = f"metadata.name={name}"
            params["fieldSelector"] = f"{params['fieldSelector']},{extra}" if params.get("fieldSelector") else extra
        selector = self._selector(kind, params)
        try:  # 0 or unset: the server's default
            timeout = float(params.get("timeoutSeconds") or 0) or self.default_watch_timeout
        except ValueError:
            raise bad_request("timeoutSeconds must be a number") from None
        bookmarks = params.get("allowWatchBookmarks") in ("1", "true", "True")
        initial_events = params.get("sendInitialEvents") in ("1", "true", "True")
        rv_param = params.get("resourceVersion") or ""
        if rv_param not in ("", "0") and not rv_param.isdigit():
            raise bad_request(f'resourceVersion: Invalid value: "{rv_param}": must be an integer')

        def shown(obj: JSON) -> JSON:
            if "as=Table" in accept:  # `kubectl get -w`: every event carries a one-row Table
                list_meta = {"resourceVersion": obj["metadata"]["resourceVersion"]}
                return self._table(kind, [obj], list_meta, params.get("includeObject", "Metadata"))
            return self._present(kind, obj, accept)

        def bookmark(rv: int, initial_end: bool = False) -> JSON:
            meta: JSON = {"resourceVersion": str(rv)}
            if initial_end:
                meta["annotations"] = {"k8s.io/initial-events-end": "true"}
            if "as=PartialObjectMetadata" in accept:
                return {"type": "BOOKMARK", "object": {"kind": "PartialObjectMetadata", "apiVersion": _META_API_VERSION, "metadata": meta}}
            return {"type": "BOOKMARK", "object": {"kind": kind.kind, "apiVersion": kind.api_version, "metadata": meta}}

        # Where the stream starts is decided before the first await: no change slips in between.
        events: list[JSON] = []
        cursor: int | None
        if rv_param in ("", "0") or initial_events:
            cursor = self._rv
            events += [{"type": "ADDED", "object": shown(obj)}
                       for obj in self.list_objects(kind, namespace) if selector(obj)]
            if initial_events:
                events.append(bookmark(cursor, initial_end=True))
        elif self._log and int(rv_param) < self._log[0].rv - 1:
            cursor = None  # the events after it are gone: the client has to list again
            oldest = self._log[0].rv - 1
            expired = ApiError(410, "Expired", f"too old resource version: {rv_param} ({oldest})")
            events.append({"type": "ERROR", "object": expired.status()})
        else:
            cursor = int(rv_param)

        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request._raw_request)  # kmock 0.8 keeps the aiohttp request here
        deadline = time.monotonic() + timeout
        try:
            await _write_events(response, events)
            last_sent = time.monotonic()
            while cursor is not None and not self._closing:
                events, cursor = self._events_after(cursor, kind, namespace, selector, shown)
                if events:
                    await _write_events(response, events)
                    last_sent = time.monotonic()
                now = time.monotonic()
                if now >= deadline:
                    break
                if bookmarks and now - last_sent >= self.bookmark_interval:
                    await _write_events(response, [bookmark(cursor)])
                    last_sent = now
                changed = self._changed  # taken before the check: a later change sets it
                if self._rv > cursor or self._closing:
                    continue
                wait = deadline - now
                if bookmarks:
                    wait = min(wait, self.bookmark_interval - (now - last_sent))
                try:
                    await asyncio.wait_for(changed.wait(), timeout=max(wait, 0.01))
                except asyncio.TimeoutError:
                    pass
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away
        return response

    def _events_after(self, cursor: int, kind: Kind, namespace: str | None,
                      selector: Callable[[JSON], bool], shown: Callable[[JSON], JSON]) -> tuple[list[JSON], int]:
        """The watch events of the logged changes after `cursor`, and the new cursor.

        A change that moves an object into the selection is ADDED, out of it DELETED.
        """
        events = []
        start = bisect.bisect_right(self._log, cursor, key=lambda entry: entry.rv)
        for entry in self._log[start:]:
            if entry.storage != kind.storage or (namespace is not None and entry.namespace != namespace):
                continue
            was = entry.old is not None and entry.type != "ADDED" and selector(entry.old)
            now = selector(entry.new)
            if entry.type == "DELETED":
                event = "DELETED" if was or now else None
            elif was:
                event = "MODIFIED" if now else "DELETED"
            else:
                event = "ADDED" if now else None
            if event:
                events.append({"type": event, "object": shown(entry.new)})
        return events, max(cursor, self._rv)


# ---------------------------------------------------------------- helpers: HTTP


def _json(payload: Any, *, status: int = 200, content_type: str = "application/json") -> aiohttp.web.Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return aiohttp.web.Response(body=body, status=status, headers={"Content-Type": content_type})


async def _write_events(response: aiohttp.web.StreamResponse, events: list[JSON]) -> None:
    if events:
        await response.write(b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in events))


def _header(request: kmock.Request, name: str) -> str | None:
    for key, value in request.headers.items():
        if key.lower() == name.lower():
            return value
    return None


def _aggregated_discovery_version(accept: str | None) -> str | None:
    """`v2`/`v2beta1` if the client asks for aggregated discovery before plain JSON."""
    for media_type in (accept or "").split(","):
        params = dict(
            part.strip().split("=", 1) for part in media_type.split(";")[1:] if "=" in part
        )
        if params.get("as") == "APIGroupDiscoveryList" and params.get("g") == "apidiscovery.k8s.io":
            if params.get("v") in ("v2", "v2beta1"):
                return params["v"]
        elif media_type.split(";")[0].strip() in ("application/json", "*/*"):
            return None
    return None


def _subresource_response_kind(sub: str, parent: JSON) -> JSON:
    if sub in _SUBRESOURCE_KINDS:
        group, version, kind = _SUBRESOURCE_KINDS[sub]
        return {"group": group, "version": version, "kind": kind}
    return parent


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError as e:
        raise bad_request(f"the body of the request is not valid JSON: {e}") from None


def _parse_json_or_yaml(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        pass
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise bad_request(f"the body of the request is neither JSON nor YAML: {e}") from None


def _parse_body(request: kmock.Request) -> Any:
    content_type = (_header(request, "Content-Type") or "").lower()
    if content_type.startswith("application/vnd.kubernetes.protobuf"):
        return decode_protobuf(request.body)
    if "yaml" in content_type:
        return _parse_json_or_yaml(request.body)
    return _parse_json(request.body)


def _parse_optional_json(raw: bytes) -> JSON | None:
    if not raw or not raw.strip():
        return None
    doc = _parse_json(raw)
    return doc if isinstance(doc, dict) else None


# ---------------------------------------------------------------- helpers: objects


def _leaf_paths(value: Any, prefix: Path = ()) -> Iterable[Path]:
    """The paths to the non-object values (and empty objects) in a JSON object; nulls excluded."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _leaf_paths(item, (*prefix, key))
    elif value is not None and prefix:
        yield prefix


def _remove_path(obj: JSON, path: Path) -> None:
    """Remove the value at `path`, and the objects that it leaves empty."""
    parents = [obj]
    for key in path[:-1]:
        child = parents[-1].get(key)
        if not isinstance(child, dict):
            return
        parents.append(child)
    parents[-1].pop(path[-1], None)
    for depth in range(len(path) - 1, 0, -1):
        if parents[depth]:
            break
        parents[depth - 1].pop(path[depth - 1], None)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec_of(obj: JSON) -> JSON:
    """What `generation` tracks: everything except metadata, status and the type."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes' version order: GA > beta > alpha, higher numbers first."""
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not match:
        return (0, 0, 0)
    stability = {None: 3, "beta": 2, "alpha": 1}[match.group(2)]
    return (stability, int(match.group(1)), int(match.group(3) or 0))


