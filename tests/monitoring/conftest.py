"""Fixtures for the monitoring tests: endpoints and variants as rows, as routing writes them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from registry.models import ModelVersion, RegisteredModel
from routing.models import Endpoint, Variant


@pytest.fixture
def make_endpoint(db: None) -> Callable[..., Endpoint]:
    """An endpoint with variants given as (name, role, version, weight, mirror_percent)."""

    def make(name: str, variants: list[tuple[str, str, int, int, int]], model: str = "m") -> Endpoint:
        rm, _ = RegisteredModel.objects.get_or_create(name=model)
        endpoint = Endpoint.objects.create(name=name, registered_model=rm)
        for vname, role, version, weight, mirror in variants:
            mv, _ = ModelVersion.objects.get_or_create(
                registered_model=rm, version=version, defaults={"status": ModelVersion.Status.READY}
            )
            Variant.objects.create(
                endpoint=endpoint,
                name=vname,
                role=role,
                model_version=mv,
                weight=weight,
                mirror_percent=mirror,
            )
        return endpoint

    return make
