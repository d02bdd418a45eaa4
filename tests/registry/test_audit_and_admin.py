from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from registry.audit import audit_record
from registry.models import AuditEvent, ModelVersion
from registry.services import registry_sync


@pytest.mark.django_db
def test_audit_rows_cannot_be_changed_or_deleted(admin_user):
    event = audit_record(actor=admin_user, action="test.action", object_type="thing", object_repr="x")
    event.reason = "rewritten"
    with pytest.raises(ValidationError):
        event.save()
    with pytest.raises(ValidationError):
        event.delete()
    assert AuditEvent.objects.get(pk=event.pk).reason == ""
    assert event.actor == admin_user.username and event.actor_kind == "user"


@pytest.mark.django_db
def test_bulk_updates_and_deletes_of_audit_rows_are_refused_too(admin_user):
    event = audit_record(actor=admin_user, action="test.bulk", object_type="thing", object_repr="x")
    with pytest.raises(ValidationError):
        AuditEvent.objects.filter(pk=event.pk).update(reason="rewritten")
    with pytest.raises(ValidationError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).reason == ""
    admin_user.delete()  # the account may go; the row stays, with the actor's name
    event = AuditEvent.objects.get(pk=event.pk)
    assert event.user is None and event.actor == "admin"


@pytest.mark.django_db
def test_an_audit_row_written_during_a_request_carries_its_request_id(client, admin_user, trained_models):
    client.force_login(admin_user)
    registry_sync(model_name=trained_models.sklearn_name)
    from controlplane.middleware import current_request_id

    token = current_request_id.set("req-abcdef123456")
    try:
        event = audit_record(actor="system", action="test", object_type="t", object_repr="r")
    finally:
        current_request_id.reset(token)
    assert event.request_id == "req-abcdef123456"


@pytest.mark.django_db
def test_the_admin_shows_versions_with_signature_metrics_and_aliases_read_only(
    client, admin_user, trained_models, mlflow_server
):
    mlflow_server.client().set_registered_model_alias(trained_models.shared_name, "champion", "1")
    registry_sync(model_name=trained_models.shared_name)
    client.force_login(admin_user)

    listing = client.get("/admin/registry/modelversion/?q=test-shared")
    assert listing.status_code == 200
    text = listing.content.decode()
    assert "30 input(s): mean radius" in text
    assert "val_auc=" in text
    assert "champion" in text

    version = ModelVersion.objects.get(registered_model__name=trained_models.shared_name, version=1)
    page = client.get(f"/admin/registry/modelversion/{version.pk}/change/")
    body = page.content.decode()
    assert page.status_code == 200
    assert "mean radius" in body and "val_auc" in body and "logistic_regression" in body
    assert 'name="status"' not in body  # mirrored fields are not editable
    assert (
        client.post(f"/admin/registry/modelversion/{version.pk}/change/", {"status": "FAILED"}).status_code
        == 403
    )

    audit = client.get("/admin/registry/auditevent/")
    assert audit.status_code == 200
    assert client.get("/admin/registry/auditevent/add/").status_code == 403
