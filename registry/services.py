"""State changes of the registry mirror: the reconcile with MLflow.

``registry_sync`` reads everything it needs from MLflow first, then applies it in one
transaction, so an MLflow outage half-way leaves the mirror exactly as it was.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction

from registry import mlflow_client
from registry.audit import MLFLOW, SYSTEM, audit_record
from registry.mlflow_client import ModelVersionInfo, RegisteredModelInfo, VersionDetails
from registry.models import ModelVersion, RegisteredModel

Progress = Callable[[str, int, int], None]


@dataclass
class SyncReport:
    """What one reconcile changed, for the command's summary and the tests."""

    models_seen: int = 0
    versions_seen: int = 0
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    alias_changes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted or self.alias_changes)


@dataclass
class _Fetched:
    """One model as MLflow reports it, read before any write."""

    model: RegisteredModelInfo | None
    name: str
    versions: list[ModelVersionInfo] = field(default_factory=list)
    details: dict[int, VersionDetails] = field(default_factory=dict)


def _ts(ms: int | None) -> dt.datetime | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def _needs_details(existing: ModelVersion | None, info: ModelVersionInfo) -> bool:
    # A version's source and run never change, so details are read once, or again when
    # the version became READY since we last read it.
    if existing is None:
        return True
    return existing.status != info.status or existing.source != info.source


def _fetch_model(name: str, progress: Progress | None) -> _Fetched:
    try:
        model = mlflow_client.registered_model_get(name)
    except mlflow_client.MlflowNotFound:
        return _Fetched(model=None, name=name)
    versions = mlflow_client.model_versions_list(name)
    known = {
        v.version: v
        for v in ModelVersion.objects.filter(registered_model__name=name).only("version", "status", "source")
    }
    fetched = _Fetched(model=model, name=name, versions=versions)
    by_source: dict[tuple[str, str], VersionDetails] = {}
    todo = [v for v in versions if _needs_details(known.get(v.version), v)]
    for i, v in enumerate(todo, 1):
        key = (v.source, v.run_id)
        if key not in by_source:
            by_source[key] = mlflow_client.version_details(v.source, v.run_id)
        fetched.details[v.version] = by_source[key]
        if progress:
            progress(name, i, len(todo))
    return fetched


def _model_fields(info: RegisteredModelInfo) -> dict[str, object]:
    return {
        "description": info.description,
        "tags": info.tags,
        "aliases": info.aliases,
        "mlflow_created_at": _ts(info.created_ms),
        "mlflow_updated_at": _ts(info.updated_ms),
        "deleted_in_mlflow": False,
    }


def _version_fields(info: ModelVersionInfo, aliases: list[str]) -> dict[str, object]:
    return {
        "status": info.status,
        "status_message": info.status_message,
        "description": info.description,
        "tags": info.tags,
        "aliases": aliases,
        "run_id": info.run_id,
        "source": info.source,
        "model_id": info.model_id,
        "mlflow_created_at": _ts(info.created_ms),
        "mlflow_updated_at": _ts(info.updated_ms),
        "deleted_in_mlflow": False,
    }


def _details_fields(d: VersionDetails) -> dict[str, object]:
    return {
        "signature_inputs": d.signature_inputs,
        "signature_outputs": d.signature_outputs,
        "flavors": d.flavors,
        "metrics": d.metrics,
        "params": d.params,
        "details_error": d.error,
    }


_AUDITED_VERSION_FIELDS = ("status", "status_message", "description", "tags", "deleted_in_mlflow")


def _apply_model(fetched: _Fetched, report: SyncReport, actor: str) -> None:
    row = RegisteredModel.objects.select_for_update().filter(name=fetched.name).first()
    if fetched.model is None:
        if row is not None and not row.deleted_in_mlflow:
            _mark_model_deleted(row, report, actor)
        return
    fields = _model_fields(fetched.model)
    if row is None:
        row = RegisteredModel.objects.create(name=fetched.name, **fields)
        audit_record(
            actor=actor,
            action="registry.model_mirrored",
            object_type="registered_model",
            object_id=row.pk,
            object_repr=row.name,
            after={"aliases": row.aliases},
        )
        report.created.append(row.name)
    else:
        _record_alias_moves(row, fetched.model.aliases, report)
        for key, value in fields.items():
            setattr(row, key, value)
        row.save()
    _apply_versions(row, fetched, report, actor)


def _record_alias_moves(row: RegisteredModel, new: dict[str, int], report: SyncReport) -> None:
    old = row.aliases or {}
    for alias in sorted(set(old) | set(new)):
        if old.get(alias) == new.get(alias):
            continue
        audit_record(
            actor=MLFLOW,
            action="registry.alias_changed_externally",
            object_type="registered_model",
            object_id=row.pk,
            object_repr=f"{row.name}@{alias}",
            before={"alias": alias, "version": old.get(alias)},
            after={"alias": alias, "version": new.get(alias)},
            reason="Alias moved in MLflow, outside the control plane.",
        )
        report.alias_changes.append(f"{row.name}@{alias}: {old.get(alias)} -> {new.get(alias)}")


def _apply_versions(row: RegisteredModel, fetched: _Fetched, report: SyncReport, actor: str) -> None:
    existing = {v.version: v for v in row.versions.all()}
    aliases_of: dict[int, list[str]] = {}
    for alias, version in row.aliases.items():
        aliases_of.setdefault(version, []).append(alias)
    new_rows: list[ModelVersion] = []
    for info in fetched.versions:
        report.versions_seen += 1
        fields = _version_fields(info, sorted(aliases_of.get(info.version, [])))
        if info.version in fetched.details:
            fields.update(_details_fields(fetched.details[info.version]))
        current = existing.pop(info.version, None)
        if current is None:
            new_rows.append(ModelVersion(registered_model=row, version=info.version, **fields))
            continue
        _update_version(current, fields, report, actor)
    ModelVersion.objects.bulk_create(new_rows, batch_size=500)
    for v in new_rows:
        report.created.append(f"{row.name} v{v.version}")
    if new_rows:
        audit_record(
            actor=actor,
            action="registry.versions_mirrored",
            object_type="registered_model",
            object_id=row.pk,
            object_repr=row.name,
            after={"versions": [v.version for v in new_rows][:1000], "count": len(new_rows)},
        )
    for gone in existing.values():
        if not gone.deleted_in_mlflow:
            _update_version(gone, {"deleted_in_mlflow": True, "aliases": []}, report, actor)


def _update_version(current: ModelVersion, fields: dict[str, object], report: SyncReport, actor: str) -> None:
    before = {k: getattr(current, k) for k in _AUDITED_VERSION_FIELDS if k in fields}
    changed = [k for k, value in fields.items() if getattr(current, k) != value]
    if not changed:
        return
    for key in changed:
        setattr(current, key, fields[key])
    current.save()
    after = {k: getattr(current, k) for k in before}
    if before != after:
        deleted = fields.get("deleted_in_mlflow") is True
        audit_record(
            actor=actor,
            action="registry.version_deleted_in_mlflow" if deleted else "registry.version_updated",
            object_type="model_version",
            object_id=current.pk,
            object_repr=str(current),
            before=before,
            after=after,
        )
        (report.deleted if deleted else report.updated).append(str(current))


def _mark_model_deleted(row: RegisteredModel, report: SyncReport, actor: str) -> None:
    row.deleted_in_mlflow = True
    row.aliases = {}
    row.save()
    row.versions.filter(deleted_in_mlflow=False).update(deleted_in_mlflow=True, aliases=[])
    audit_record(
        actor=actor,
        action="registry.model_deleted_in_mlflow",
        object_type="registered_model",
        object_id=row.pk,
        object_repr=row.name,
        after={"deleted_in_mlflow": True},
    )
    report.deleted.append(row.name)


def registry_model_names() -> list[str]:
    """Every model a full reconcile looks at: those in MLflow and those still mirrored as live.

    Raises ``MlflowUnavailable``; reads only.
    """
    names = mlflow_client.registered_model_names()
    known = RegisteredModel.objects.filter(deleted_in_mlflow=False).values_list("name", flat=True)
    return sorted(set(names) | set(known))


def registry_sync(
    *, model_name: str | None = None, actor: str = SYSTEM, progress: Progress | None = None
) -> SyncReport:
    """Reconcile the mirror with MLflow: every model, or only ``model_name``.

    Idempotent. Reads all of MLflow first (raising ``MlflowUnavailable`` before any write),
    then applies every change and its audit rows in one transaction. Versions and models gone
    from MLflow are marked ``deleted_in_mlflow``, never dropped; aliases moved in MLflow are
    recorded as external changes.
    """
    names = registry_model_names() if model_name is None else [model_name]
    fetched = [_fetch_model(name, progress) for name in names]
    report = SyncReport(models_seen=sum(1 for f in fetched if f.model is not None))
    with transaction.atomic():
        for item in fetched:
            _apply_model(item, report, actor)
    return report


def version_tags_write(version: ModelVersion, wanted: dict[str, str]) -> int:
    """Write the tags of ``wanted`` whose value MLflow (as mirrored) does not have yet; returns
    how many were written. MLflow is called outside any transaction; the mirror is then updated in
    one short one, so a second call with the same ``wanted`` makes no MLflow call. Raises
    ``MlflowUnavailable`` (nothing recorded as written) when MLflow cannot be reached."""
    changed = {k: v for k, v in wanted.items() if version.tags.get(k) != v}
    if not changed:
        return 0
    for key, value in changed.items():
        mlflow_client.version_tag_set(
            name=version.registered_model.name, version=version.version, key=key, value=value
        )
    with transaction.atomic():
        row = ModelVersion.objects.select_for_update().get(pk=version.pk)
        row.tags = {**row.tags, **changed}
        row.save(update_fields=["tags"])
    version.tags = row.tags
    return len(changed)
